// Factory of the envoy-js native filter, registered as `envoy.filters.http.quickjs`.
#pragma once

#include <string>

#include "source/extensions/filters/http/common/factory_base.h"

#include "envoy_ext/filter/quickjs.pb.h"
#include "envoy_ext/filter/quickjs.pb.validate.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

inline constexpr absl::string_view kFilterName = "envoy.filters.http.quickjs";

class QuickJsFilterFactory
    : public Common::FactoryBase<envoyjs::filters::http::quickjs::v1::QuickJs,
                                 envoyjs::filters::http::quickjs::v1::QuickJsPerRoute> {
public:
  QuickJsFilterFactory() : FactoryBase(std::string(kFilterName)) {}

private:
  // Compiles the bundle here, on the main thread; throws EnvoyException when it does not load.
  Http::FilterFactoryCb createFilterFactoryFromProtoTyped(
      const envoyjs::filters::http::quickjs::v1::QuickJs& proto_config,
      const std::string& stats_prefix, Server::Configuration::FactoryContext& context) override;

  absl::StatusOr<Router::RouteSpecificFilterConfigConstSharedPtr>
  createRouteSpecificFilterConfigTyped(
      const envoyjs::filters::http::quickjs::v1::QuickJsPerRoute& proto_config,
      Server::Configuration::ServerFactoryContext& context,
      ProtobufMessage::ValidationVisitor& validator) override;
};

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
