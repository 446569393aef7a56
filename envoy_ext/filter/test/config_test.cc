// The factory (registration, the filter callback, route configs, config-time errors) and the
// config side of the filter: per-worker engines' gauges and the remote source fetch.
#include <memory>
#include <string>

#include "envoy/registry/registry.h"
#include "envoy/server/filter_config.h"

#include "source/common/http/message_impl.h"
#include "source/common/init/manager_impl.h"
#include "source/common/stats/isolated_store_impl.h"

#include "test/mocks/http/mocks.h"
#include "test/mocks/init/mocks.h"
#include "test/mocks/server/factory_context.h"
#include "test/mocks/upstream/cluster_manager.h"
#include "test/test_common/utility.h"

#include "envoy_ext/filter/config.h"
#include "envoy_ext/filter/filter_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

using testing::_;
using testing::Invoke;
using testing::NiceMock;
using testing::Return;

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {
namespace {

TEST(QuickJsConfigTest, FactoryIsRegistered) {
  EXPECT_NE(
      nullptr,
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
                            EnvoyException, "envoy_js: either `source` or `bytecode` must be set");
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
                          EnvoyException, "clashes with the engine's own envoy_js.errors");
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

TEST(QuickJsWorkerIndexTest, ParsesWorkerDispatcherNames) {
  EXPECT_EQ(3, WorkerEngine::workerIndex("worker_3"));
  EXPECT_FALSE(WorkerEngine::workerIndex("main_thread").has_value());
  EXPECT_FALSE(WorkerEngine::workerIndex("worker_").has_value());
}

TEST(QuickJsSettingsTest, OnlyPresentFieldsAreWritten) {
  ProtoConfig proto;
  EXPECT_EQ(R"({"failure_mode":"closed"})", settingsJson(proto));
  proto.set_failure_mode(ProtoConfig::OPEN);
  proto.mutable_max_cpu_ms_per_event()->set_value(20);
  EXPECT_EQ(R"({"failure_mode":"open","max_cpu_ms_per_event":20})", settingsJson(proto));
  proto.set_allow_code_from_strings(true);
  EXPECT_EQ(R"({"failure_mode":"open","max_cpu_ms_per_event":20,"allow_code_from_strings":true})",
            settingsJson(proto));
}

// The runtime sums the workers' shares (runtime/process_state.h) and hands every engine's host
// the process value: the host sets it, whichever worker's engine reports it.
TEST(QuickJsWorkerEngineTest, AGaugeIsSetToTheProcessValueTheRuntimeGives) {
  Stats::IsolatedStoreImpl stats;
  Stats::Scope& scope = *stats.rootScope();
  NiceMock<Upstream::MockClusterManager> cluster_manager;
  auto shared = std::make_shared<const SharedState>(SharedState{
      scope.createScope("envoy_js."),
      EngineCounters{scope.counterFromString("errors"), scope.counterFromString("cpu_limit"),
                     scope.counterFromString("heap_limit")},
      envoy_js::FailureMode::Closed, cluster_manager});
  Stats::Gauge& gauge =
      scope.gaugeFromString("envoy_js.in_flight", Stats::Gauge::ImportMode::NeverImport);
  auto program = std::make_shared<LoadedProgram>();
  MetricSink sink{envoy_js::MetricKind::Gauge};
  sink.gauge = &gauge;
  program->metrics.push_back(sink);
  Api::ApiPtr api = Api::createApiForTest();
  // Not named like a worker: no engine is started, only the EngineHost side is tested.
  Event::DispatcherPtr dispatcher = api->allocateDispatcher("test_thread");
  auto first = std::make_unique<WorkerEngine>(shared, program, *dispatcher);
  auto second = std::make_unique<WorkerEngine>(shared, program, *dispatcher);

  first->recordMetric(0, envoy_js::MetricKind::Gauge, {}, 3);
  EXPECT_EQ(3, gauge.value());
  second->recordMetric(0, envoy_js::MetricKind::Gauge, {}, 7); // the sum after second's inc(4)
  EXPECT_EQ(7, gauge.value());
  first->recordMetric(0, envoy_js::MetricKind::Gauge, {}, 5); // first's share went from 3 to 1
  EXPECT_EQ(5, gauge.value());
  first->recordMetric(0, envoy_js::MetricKind::Gauge, {}, 0);
  EXPECT_EQ(0, gauge.value());
}

// sha256 of kRemoteCode, as `remote.sha256` must give it.
constexpr absl::string_view kRemoteCode = "export default {};";
constexpr absl::string_view kRemoteCodeSha256 =
    "9f085b1079ab38f776bbb3930dfd067a838ca3e0483aff8625f88837e8ed964c";

class QuickJsRemoteSourceTest : public testing::Test {
protected:
  QuickJsRemoteSourceTest()
      : api_(Api::createApiForTest()), dispatcher_(api_->allocateDispatcher("main_thread")) {
    cluster_manager_.initializeThreadLocalClusters({"code"});
    source_.mutable_http_uri()->set_uri("http://code.example/filter.js");
    source_.mutable_http_uri()->set_cluster("code");
    source_.mutable_http_uri()->mutable_timeout()->set_seconds(1);
    source_.set_sha256(std::string(kRemoteCodeSha256));
  }

  Http::MockAsyncClient& client() { return cluster_manager_.thread_local_cluster_.async_client_; }

  Api::ApiPtr api_;
  Event::DispatcherPtr dispatcher_;
  NiceMock<Upstream::MockClusterManager> cluster_manager_;
  envoy::config::core::v3::RemoteDataSource source_;
  Http::MockAsyncClientRequest request_{&client()};
};

TEST_F(QuickJsRemoteSourceTest, AnInitializedInitManagerGetsNoTargetAndTheFetchStartsAtOnce) {
  // Extension config discovery builds configs after the listener's init manager finished.
  NiceMock<Init::MockManager> init_manager;
  ON_CALL(init_manager, state()).WillByDefault(Return(Init::Manager::State::Initialized));
  EXPECT_CALL(init_manager, add(_)).Times(0);
  Http::AsyncClient::Callbacks* callbacks = nullptr;
  EXPECT_CALL(client(), send_(_, _, _))
      .WillOnce(
          Invoke([&](Http::RequestMessagePtr&, Http::AsyncClient::Callbacks& cb,
                     const Http::AsyncClient::RequestOptions&) -> Http::AsyncClient::Request* {
            callbacks = &cb;
            return &request_;
          }));
  std::string fetched;
  RemoteSource remote(cluster_manager_, init_manager, *dispatcher_, source_,
                      [&fetched](const std::string& data) { fetched = data; });
  ASSERT_NE(nullptr, callbacks);
  Http::ResponseMessagePtr response(new Http::ResponseMessageImpl(
      Http::ResponseHeaderMapPtr{new Http::TestResponseHeaderMapImpl{{":status", "200"}}}));
  response->body().add(kRemoteCode);
  callbacks->onSuccess(request_, std::move(response));
  EXPECT_EQ(kRemoteCode, fetched);
}

TEST_F(QuickJsRemoteSourceTest, DestroyedWhileFetchingReleasesTheInitManager) {
  Init::ManagerImpl init_manager("test");
  Init::ExpectableWatcherImpl watcher;
  EXPECT_CALL(client(), send_(_, _, _)).WillOnce(Return(&request_));
  auto remote = std::make_unique<RemoteSource>(
      cluster_manager_, init_manager, *dispatcher_, source_,
      [](const std::string&) { ADD_FAILURE() << "nothing was fetched"; });
  init_manager.initialize(watcher); // the target starts the fetch
  EXPECT_EQ(Init::Manager::State::Initializing, init_manager.state());
  // The config goes away while warming: the fetch is cancelled and the listener may go on.
  EXPECT_CALL(request_, cancel());
  watcher.expectReady();
  remote.reset();
  EXPECT_EQ(Init::Manager::State::Initialized, init_manager.state());
}

} // namespace
} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
