// The factory: registration, the filter callback, route configs, config-time errors.
#include <string>

#include "envoy/registry/registry.h"
#include "envoy/server/filter_config.h"

#include "test/mocks/http/mocks.h"
#include "test/mocks/server/factory_context.h"
#include "test/test_common/utility.h"

#include "envoy_ext/filter/config.h"
#include "envoy_ext/filter/filter_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

using testing::_;
using testing::NiceMock;

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {
namespace {

TEST(QuickJsConfigTest, FactoryIsRegistered) {
  EXPECT_NE(nullptr,
            Registry::FactoryRegistry<Server::Configuration::NamedHttpFilterConfigFactory>::getFactory(
                std::string(kFilterName)));
}

TEST(QuickJsConfigTest, CreatesAStreamFilter) {
  const std::string yaml = R"EOF(
source:
  local:
    inline_string: "export default { onRequest(req) { req.headers.set('x-a', '1'); } };"
config: { greeting: hello }
max_cpu_ms_per_event: 20
)EOF";
  ProtoConfig proto;
  TestUtility::loadFromYamlAndValidate(yaml, proto);
  NiceMock<Server::Configuration::MockFactoryContext> context;
  QuickJsFilterFactory factory;
  absl::StatusOr<Http::FilterFactoryCb> cb =
      factory.createFilterFactoryFromProto(proto, "stats.", context);
  ASSERT_TRUE(cb.ok());
  NiceMock<Http::MockFilterChainFactoryCallbacks> filter_callbacks;
  EXPECT_CALL(filter_callbacks, addStreamFilter(_));
  cb.value()(filter_callbacks);
}

TEST(QuickJsConfigTest, CompileErrorRejectsTheConfig) {
  const std::string yaml = R"EOF(
source:
  local:
    inline_string: "export default { onRequest( };"
)EOF";
  ProtoConfig proto;
  TestUtility::loadFromYamlAndValidate(yaml, proto);
  NiceMock<Server::Configuration::MockFactoryContext> context;
  QuickJsFilterFactory factory;
  EXPECT_THROW_WITH_REGEX(factory.createFilterFactoryFromProto(proto, "stats.", context).value(),
                          EnvoyException, ":1:[0-9]+: ");
}

TEST(QuickJsConfigTest, MissingSourceRejectsTheConfig) {
  ProtoConfig proto;
  NiceMock<Server::Configuration::MockFactoryContext> context;
  QuickJsFilterFactory factory;
  EXPECT_THROW_WITH_MESSAGE(factory.createFilterFactoryFromProto(proto, "stats.", context).value(),
                            EnvoyException, "quickjs: either `source` or `bytecode` must be set");
}

TEST(QuickJsConfigTest, MetricNamedLikeAnEngineCounterIsRejected) {
  const std::string yaml = R"EOF(
source:
  local:
    inline_string: "export default { metrics: { errors: 'counter' } };"
)EOF";
  ProtoConfig proto;
  TestUtility::loadFromYamlAndValidate(yaml, proto);
  NiceMock<Server::Configuration::MockFactoryContext> context;
  QuickJsFilterFactory factory;
  EXPECT_THROW_WITH_REGEX(factory.createFilterFactoryFromProto(proto, "stats.", context).value(),
                          EnvoyException, "clashes with the engine's own quickjs.errors");
}

TEST(QuickJsConfigTest, RouteConfig) {
  NiceMock<Server::Configuration::MockServerFactoryContext> context;
  QuickJsFilterFactory factory;

  ProtoPerRoute disabled;
  TestUtility::loadFromYamlAndValidate("disabled: true", disabled);
  auto route = factory.createRouteSpecificFilterConfig(disabled, context,
                                                       ProtobufMessage::getNullValidationVisitor());
  ASSERT_TRUE(route.ok());
  const auto* typed = dynamic_cast<const RouteConfig*>(route.value().get());
  ASSERT_NE(nullptr, typed);
  EXPECT_TRUE(typed->routeOverride().disabled);

  ProtoPerRoute config;
  TestUtility::loadFromYamlAndValidate("config: { header: x-route }", config);
  route = factory.createRouteSpecificFilterConfig(config, context,
                                                  ProtobufMessage::getNullValidationVisitor());
  ASSERT_TRUE(route.ok());
  typed = dynamic_cast<const RouteConfig*>(route.value().get());
  ASSERT_NE(nullptr, typed);
  EXPECT_FALSE(typed->routeOverride().disabled);
  EXPECT_EQ(R"({"header":"x-route"})", typed->routeOverride().configJson);
}

TEST(QuickJsConfigTest, EmptyRouteConfigIsInvalid) {
  ProtoPerRoute empty;
  EXPECT_THROW(TestUtility::validate(empty), EnvoyException);
}

} // namespace
} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
