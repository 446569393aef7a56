#include "envoy_ext/filter/config.h"

#include <memory>

#include "envoy/registry/registry.h"

#include "source/common/protobuf/utility.h"

#include "envoy_ext/filter/filter.h"
#include "envoy_ext/filter/filter_config.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

Http::FilterFactoryCb QuickJsFilterFactory::createFilterFactoryFromProtoTyped(
    const envoyjs::filters::http::quickjs::v1::QuickJs& proto_config,
    const std::string& stats_prefix, Server::Configuration::FactoryContext& context) {
  Server::Configuration::ServerFactoryContext& server = context.serverFactoryContext();
  auto config = std::make_shared<FilterConfig>(proto_config, stats_prefix, server, context.scope(),
                                               context.initManager(), server.threadLocal());
  return [config](Http::FilterChainFactoryCallbacks& callbacks) -> void {
    callbacks.addStreamFilter(std::make_shared<Filter>(config->shared(), config->workerEngine()));
  };
}

absl::StatusOr<Router::RouteSpecificFilterConfigConstSharedPtr>
QuickJsFilterFactory::createRouteSpecificFilterConfigTyped(
    const envoyjs::filters::http::quickjs::v1::QuickJsPerRoute& proto_config,
    Server::Configuration::ServerFactoryContext&, ProtobufMessage::ValidationVisitor&) {
  envoy_js::RouteOverride route;
  route.disabled = proto_config.disabled();
  if (proto_config.has_config()) {
    absl::StatusOr<std::string> json = MessageUtil::getJsonStringFromMessage(proto_config.config());
    if (!json.ok()) {
      return json.status();
    }
    route.configJson = std::move(json.value());
  }
  return std::make_shared<const RouteConfig>(std::move(route));
}

REGISTER_FACTORY(QuickJsFilterFactory, Server::Configuration::NamedHttpFilterConfigFactory);

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
