// Unit tests of the envoy-js filter against Envoy's mocks: one real dispatcher (named like a
// worker, so the engine starts eagerly) and real thread-local storage, mocked stream callbacks.
// The stream logic itself is tested in test/runtime through the host stub; these tests cover
// the adapter: status mapping, posting continues, local replies, buffers, stream info,
// metadata, filter state, stats, callouts, per-route config, destroy while pending.
#include <memory>
#include <string>

#include "envoy/router/string_accessor.h"

#include "source/common/buffer/buffer_impl.h"
#include "source/common/http/message_impl.h"
#include "source/common/stats/isolated_store_impl.h"
#include "source/common/thread_local/thread_local_impl.h"

#include "test/mocks/http/mocks.h"
#include "test/mocks/init/mocks.h"
#include "test/mocks/server/factory_context.h"
#include "test/mocks/upstream/cluster_manager.h"
#include "test/test_common/utility.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "envoy_ext/filter/filter.h"
#include "envoy_ext/filter/filter_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

using testing::_;
using testing::Invoke;
using testing::NiceMock;
using testing::Return;
using testing::ReturnRef;

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {
namespace {

class QuickJsFilterTest : public testing::Test {
protected:
  QuickJsFilterTest()
      : api_(Api::createApiForTest()), dispatcher_(api_->allocateDispatcher("worker_0")) {
    tls_.registerThread(*dispatcher_, /*main_thread=*/true);
    ON_CALL(decoder_callbacks_, dispatcher()).WillByDefault(ReturnRef(*dispatcher_));
    ON_CALL(encoder_callbacks_, dispatcher()).WillByDefault(ReturnRef(*dispatcher_));
    // Envoy's buffer for this filter, created by the first addDecodedData.
    ON_CALL(decoder_callbacks_, decodingBuffer())
        .WillByDefault(Invoke([this]() -> const Buffer::Instance* {
          return decoded_created_ ? &decoded_ : nullptr;
        }));
    ON_CALL(decoder_callbacks_, addDecodedData(_, _))
        .WillByDefault(Invoke([this](Buffer::Instance& data, bool) {
          decoded_created_ = true;
          decoded_.move(data);
        }));
    ON_CALL(decoder_callbacks_, modifyDecodingBuffer(_))
        .WillByDefault(Invoke(
            [this](std::function<void(Buffer::Instance&)> callback) { callback(decoded_); }));
  }

  void TearDown() override {
    if (filter_ != nullptr) {
      filter_->onDestroy();
      filter_.reset();
    }
    config_.reset();
    tls_.shutdownGlobalThreading();
    tls_.shutdownThread();
  }

  void setup(const std::string& js, const std::string& extra_yaml = "") {
    const std::string yaml = absl::StrCat(R"EOF(
source:
  local:
    inline_string: |
)EOF",
                                          indent(js), R"EOF(
config:
  tag: unit
)EOF",
                                          extra_yaml);
    ProtoConfig proto;
    TestUtility::loadFromYaml(yaml, proto);
    config_ = std::make_shared<FilterConfig>(proto, "test.", server_, *stats_.rootScope(),
                                             init_manager_, tls_);
    filter_ = std::make_shared<Filter>(config_->shared(), config_->workerEngine());
    filter_->setDecoderFilterCallbacks(decoder_callbacks_);
    filter_->setEncoderFilterCallbacks(encoder_callbacks_);
  }

  static std::string indent(const std::string& text) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      absl::StrAppend(&out, "      ", line, "\n");
    }
    return out;
  }

  uint64_t counter(const std::string& name) {
    Stats::CounterSharedPtr c = TestUtility::findCounter(stats_, name);
    return c == nullptr ? 0 : c->value();
  }

  Api::ApiPtr api_;
  Event::DispatcherPtr dispatcher_;
  ThreadLocal::InstanceImpl tls_;
  Stats::IsolatedStoreImpl stats_;
  NiceMock<Server::Configuration::MockServerFactoryContext> server_;
  NiceMock<Init::MockManager> init_manager_;
  NiceMock<Http::MockStreamDecoderFilterCallbacks> decoder_callbacks_;
  NiceMock<Http::MockStreamEncoderFilterCallbacks> encoder_callbacks_;
  Buffer::OwnedImpl decoded_;
  bool decoded_created_{false};
  FilterConfigSharedPtr config_;
  std::shared_ptr<Filter> filter_;
};

TEST_F(QuickJsFilterTest, SyncHookMutatesHeadersAndContinues) {
  setup(R"JS(export default { onRequest(req, ctx) { req.headers.set("x-seen", ctx.config.tag); } };)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  EXPECT_EQ("unit", headers.get_("x-seen"));
}

TEST_F(QuickJsFilterTest, RespondSendsLocalReply) {
  setup(R"JS(export default {
  onRequest(req, ctx) {
    return ctx.respond(403, { body: "no\n", details: "denied", headers: { "x-why": "test" } });
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::Forbidden, "no\n", _, _, "denied"))
      .WillOnce(Invoke([](Http::Code, absl::string_view,
                          std::function<void(Http::ResponseHeaderMap&)> modify_headers,
                          const auto&, absl::string_view) {
        Http::TestResponseHeaderMapImpl response{{":status", "403"}};
        modify_headers(response);
        EXPECT_EQ("test", response.get_("x-why"));
      }));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, PendingHookContinuesThroughTheDispatcher) {
  setup(R"JS(export default {
  async onRequest(req) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    req.headers.set("x-late", "1");
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  dispatcher_->run(Event::Dispatcher::RunType::Block);
  EXPECT_EQ("1", headers.get_("x-late"));
}

TEST_F(QuickJsFilterTest, DestroyWhilePendingNeverContinues) {
  setup(R"JS(export default {
  async onRequest(req) { await new Promise((resolve) => setTimeout(resolve, 5)); },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  filter_->onDestroy();
  dispatcher_->run(Event::Dispatcher::RunType::Block);
}

TEST_F(QuickJsFilterTest, DataArrivingBeforeAPostedContinueRunsDropsIt) {
  // The hook settles outside any Envoy callback (a callout answers), so the runtime asks for a
  // continue, which the filter posts. Before the post runs, the last data frame arrives and the
  // filter answers Continue: Envoy resumes by itself, and the posted continue must not run.
  setup(R"JS(export default {
  async onRequest(req, ctx) { await ctx.fetch("authz", { method: "GET", path: "/check" }); },
};)JS");
  server_.cluster_manager_.initializeThreadLocalClusters({"authz"});
  Http::MockAsyncClient& client = server_.cluster_manager_.thread_local_cluster_.async_client_;
  Http::MockAsyncClientRequest request(&client);
  Http::AsyncClient::Callbacks* callbacks = nullptr;
  EXPECT_CALL(client, send_(_, _, _))
      .WillOnce(Invoke([&](Http::RequestMessagePtr&, Http::AsyncClient::Callbacks& cb,
                           const Http::AsyncClient::RequestOptions&) -> Http::AsyncClient::Request* {
        callbacks = &cb;
        return &request;
      }));
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, false));
  ASSERT_NE(nullptr, callbacks);
  callbacks->onSuccess(request, std::make_unique<Http::ResponseMessageImpl>(
                                    Http::ResponseHeaderMapPtr{
                                        new Http::TestResponseHeaderMapImpl{{":status", "200"}}}));

  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  Buffer::OwnedImpl data("payload");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  dispatcher_->run(Event::Dispatcher::RunType::NonBlock);
}

TEST_F(QuickJsFilterTest, ThrowingHookFailsClosedAndCounts) {
  setup(R"JS(export default { onRequest() { throw new Error("boom"); } };)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_,
              sendLocalReply(Http::Code::InternalServerError, _, _, _, "envoy_js_error"));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.quickjs.errors"));
}

TEST_F(QuickJsFilterTest, ThrowingHookFailsOpen) {
  setup(R"JS(export default { onRequest() { throw new Error("boom"); } };)JS",
        "failure_mode: OPEN\n");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(_, _, _, _, _)).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.quickjs.errors"));
}

TEST_F(QuickJsFilterTest, WholeBodyIsReplacedInEnvoysBuffer) {
  setup(R"JS(export default {
  async onRequest(req) {
    const order = await req.body.json();
    order.seen = true;
    req.body.replace(JSON.stringify(order));
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"},
                                         {":path", "/orders"},
                                         {":authority", "h"},
                                         {"content-length", "7"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, false));
  Buffer::OwnedImpl data(R"({"a":1})");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ(0, data.length());
  EXPECT_EQ(R"({"a":1,"seen":true})", decoded_.toString());
  EXPECT_EQ(std::to_string(decoded_.length()), headers.get_("content-length"));
}

TEST_F(QuickJsFilterTest, StreamingChunkIsRewrittenInPlace) {
  setup(R"JS(export default { onRequestData(chunk) { chunk.replace(chunk.text().toUpperCase()); } };)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, false));
  Buffer::OwnedImpl data("abc");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ("ABC", data.toString());
}

TEST_F(QuickJsFilterTest, ResponseHookSeesEncoderSide) {
  setup(R"JS(export default { onResponse(res) { res.headers.set("x-filtered-by", "envoy-js"); } };)JS");
  Http::TestRequestHeaderMapImpl request{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(request, true));
  Http::TestResponseHeaderMapImpl response{{":status", "200"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->encodeHeaders(response, true));
  EXPECT_EQ("envoy-js", response.get_("x-filtered-by"));
}

TEST_F(QuickJsFilterTest, MetadataAndFilterStateReachStreamInfo) {
  setup(R"JS(export default {
  onRequest(req, ctx) {
    ctx.metadata.set("envoy.test", "user", { name: "bob" });
    ctx.filterState.set("envoy_js.user", "bob");
    req.headers.set("x-read", ctx.filterState.get("envoy_js.user") ?? "none");
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  const auto& metadata = decoder_callbacks_.stream_info_.dynamicMetadata().filter_metadata();
  ASSERT_TRUE(metadata.contains("envoy.test"));
  EXPECT_EQ("bob", metadata.at("envoy.test")
                       .fields()
                       .at("user")
                       .struct_value()
                       .fields()
                       .at("name")
                       .string_value());
  const auto* value =
      decoder_callbacks_.stream_info_.filterState()->getDataReadOnly<Router::StringAccessor>(
          "envoy_js.user");
  ASSERT_NE(nullptr, value);
  EXPECT_EQ("bob", value->asString());
  EXPECT_EQ("bob", headers.get_("x-read"));
}

TEST_F(QuickJsFilterTest, DeclaredMetricsAreEnvoyStats) {
  setup(R"JS(export default {
  metrics: { hits: "counter" },
  onRequest(req, ctx) { ctx.metrics.hits.inc(); },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.quickjs.hits"));
}

TEST_F(QuickJsFilterTest, DisabledRouteSkipsTheFilter) {
  setup(R"JS(export default { onRequest() { throw new Error("must not run"); } };)JS");
  envoy_js::RouteOverride route;
  route.disabled = true;
  RouteConfig route_config(route);
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&route_config));
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(_, _, _, _, _)).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  EXPECT_EQ(0, counter("test.quickjs.errors"));
}

TEST_F(QuickJsFilterTest, RouteConfigIsMergedOverTheFilterConfig) {
  setup(R"JS(export default { onRequest(req, ctx) { req.headers.set("x-tag", ctx.config.tag); } };)JS");
  envoy_js::RouteOverride route;
  route.configJson = R"({"tag":"route"})";
  RouteConfig route_config(route);
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&route_config));
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, filter_->decodeHeaders(headers, true));
  EXPECT_EQ("route", headers.get_("x-tag"));
}

TEST_F(QuickJsFilterTest, FetchCalloutGoesThroughTheClustersAsyncClient) {
  setup(R"JS(export default {
  async onRequest(req, ctx) {
    const r = await ctx.fetch("authz", { method: "GET", path: "/check" });
    req.headers.set("x-user", r.headers.get("x-user") ?? "");
  },
};)JS");
  server_.cluster_manager_.initializeThreadLocalClusters({"authz"});
  Http::MockAsyncClient& client = server_.cluster_manager_.thread_local_cluster_.async_client_;
  Http::MockAsyncClientRequest request(&client);
  Http::AsyncClient::Callbacks* callbacks = nullptr;
  EXPECT_CALL(client, send_(_, _, _))
      .WillOnce(Invoke([&](Http::RequestMessagePtr& message, Http::AsyncClient::Callbacks& cb,
                           const Http::AsyncClient::RequestOptions&) -> Http::AsyncClient::Request* {
        EXPECT_EQ("/check", message->headers().getPathValue());
        callbacks = &cb;
        return &request;
      }));

  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
  ASSERT_NE(nullptr, callbacks);

  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  callbacks->onSuccess(request, std::make_unique<Http::ResponseMessageImpl>(
                                    Http::ResponseHeaderMapPtr{new Http::TestResponseHeaderMapImpl{
                                        {":status", "200"}, {"x-user", "bob"}}}));
  dispatcher_->run(Event::Dispatcher::RunType::NonBlock);
  EXPECT_EQ("bob", headers.get_("x-user"));
}

TEST_F(QuickJsFilterTest, UnknownClusterRejectsTheFetch) {
  setup(R"JS(export default {
  async onRequest(req, ctx) {
    try {
      await ctx.fetch("nowhere", { method: "GET", path: "/" });
    } catch (e) {
      return ctx.respond(502, { details: "fetch_failed" });
    }
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::BadGateway, _, _, _, "fetch_failed"));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, filter_->decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, SyntaxErrorRejectsTheConfigWithItsLocation) {
  EXPECT_THROW_WITH_REGEX(setup("export default { onRequest( };"), EnvoyException,
                          "<inline source>:1:[0-9]+: ");
}

TEST_F(QuickJsFilterTest, SettingsOutOfRangeRejectTheConfig) {
  EXPECT_THROW_WITH_REGEX(
      setup("export default {};", "max_heap_bytes: 1\n"), EnvoyException, "max_heap_bytes");
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
}

} // namespace
} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
