// Unit tests of the envoy-js filter against Envoy's mocks: one real dispatcher (named like a
// worker, so the engine starts eagerly) and real thread-local storage, mocked stream callbacks.
// The stream logic itself is tested in test/runtime through the host stub; these tests cover
// the adapter: status mapping, the scheduled run and immediate host calls, header maps looked
// up afresh, held body bytes (never modify*Buffer), local replies, metadata, filter state,
// per-route config, added trailers, callouts.
//
// Every mock method the adapter relies on gets an explicit ON_CALL here, so that the tests do
// not depend on default actions that differ between Envoy versions.
#include <memory>
#include <string>

#include "envoy/router/string_accessor.h"

#include "source/common/buffer/buffer_impl.h"
#include "source/common/http/message_impl.h"
#include "source/common/stats/isolated_store_impl.h"
#include "source/common/thread_local/thread_local_impl.h"

#include "test/mocks/event/mocks.h"
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

constexpr envoy_js::Direction kRequest = envoy_js::Direction::Request;

class QuickJsFilterTest : public testing::Test {
protected:
  QuickJsFilterTest()
      : api_(Api::createApiForTest()), dispatcher_(api_->allocateDispatcher("worker_0")) {
    tls_.registerThread(*dispatcher_, /*main_thread=*/true);
    ON_CALL(decoder_callbacks_, dispatcher()).WillByDefault(ReturnRef(*dispatcher_));
    ON_CALL(encoder_callbacks_, dispatcher()).WillByDefault(ReturnRef(*dispatcher_));
    // The stream's maps, as Envoy's FilterManager hands them out at any time.
    ON_CALL(decoder_callbacks_, requestHeaders()).WillByDefault(Invoke([this]() {
      return makeOptRefFromPtr<Http::RequestHeaderMap>(request_headers_);
    }));
    ON_CALL(decoder_callbacks_, requestTrailers()).WillByDefault(Invoke([this]() {
      return makeOptRefFromPtr<Http::RequestTrailerMap>(request_trailers_);
    }));
    ON_CALL(encoder_callbacks_, responseHeaders()).WillByDefault(Invoke([this]() {
      return makeOptRefFromPtr<Http::ResponseHeaderMap>(response_headers_);
    }));
    ON_CALL(encoder_callbacks_, responseTrailers()).WillByDefault(Invoke([this]() {
      return makeOptRefFromPtr<Http::ResponseTrailerMap>(response_trailers_);
    }));
    ON_CALL(decoder_callbacks_, downstreamCallbacks()).WillByDefault(Invoke([this]() {
      return OptRef<Http::DownstreamStreamFilterCallbacks>(
          decoder_callbacks_.downstream_callbacks_);
    }));
    ON_CALL(decoder_callbacks_, activeSpan())
        .WillByDefault(ReturnRef(decoder_callbacks_.active_span_));
    // Bytes the filter hands to Envoy's buffer.
    ON_CALL(decoder_callbacks_, addDecodedData(_, _))
        .WillByDefault(Invoke([this](Buffer::Instance& data, bool) { decoded_.move(data); }));
    // The adapter never asks Envoy to change its filter buffer: Envoy ASSERTs in
    // modify*Buffer once data went past the filter (filter_views.cc).
    EXPECT_CALL(decoder_callbacks_, modifyDecodingBuffer(_)).Times(0);
    EXPECT_CALL(encoder_callbacks_, modifyEncodingBuffer(_)).Times(0);
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

  // Envoy's FilterManager makes the map the stream's before it calls the filter.
  Http::FilterHeadersStatus decodeHeaders(Http::RequestHeaderMap& headers, bool end_stream) {
    request_headers_ = &headers;
    return filter_->decodeHeaders(headers, end_stream);
  }
  Http::FilterHeadersStatus encodeHeaders(Http::ResponseHeaderMap& headers, bool end_stream) {
    response_headers_ = &headers;
    return filter_->encodeHeaders(headers, end_stream);
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
  Http::RequestHeaderMap* request_headers_{};
  Http::RequestTrailerMap* request_trailers_{};
  Http::ResponseHeaderMap* response_headers_{};
  Http::ResponseTrailerMap* response_trailers_{};
  Buffer::OwnedImpl decoded_; // what addDecodedData gave Envoy
  FilterConfigSharedPtr config_;
  std::shared_ptr<Filter> filter_;
};

Http::TestRequestHeaderMapImpl getRequest() {
  return {{":method", "GET"}, {":path", "/"}, {":authority", "h"}};
}

TEST_F(QuickJsFilterTest, SyncHookMutatesHeadersAndContinues) {
  setup(
      R"JS(export default { onRequest(req, ctx) { req.headers.set("x-seen", ctx.config.tag); } };)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ("unit", headers.get_("x-seen"));
}

TEST_F(QuickJsFilterTest, RespondSendsLocalReply) {
  setup(R"JS(export default {
  onRequest(req, ctx) {
    return ctx.respond(403, { body: "no\n", details: "denied", headers: { "x-why": "test" } });
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::Forbidden, "no\n", _, _, "denied"))
      .WillOnce(Invoke([](Http::Code, absl::string_view,
                          std::function<void(Http::ResponseHeaderMap&)> modify_headers, const auto&,
                          absl::string_view) {
        Http::TestResponseHeaderMapImpl response{{":status", "403"}};
        modify_headers(response);
        EXPECT_EQ("test", response.get_("x-why"));
      }));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, OwnLocalReplyRunsThroughOwnResponseHooksFirst) {
  // The runtime runs onResponse/onResponseData on its own reply before sendLocalReply (Envoy's
  // dynamic-module filter skips the sender's encode hooks for it; every host behaves alike).
  setup(R"JS(export default {
  onRequest(req, ctx) { return ctx.respond(401, { body: "no" }); },
  onResponse(res) { res.headers.set("access-control-allow-origin", "*"); },
  onResponseData(chunk) { chunk.replace("[" + chunk.text() + "]"); },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::Unauthorized, "[no]", _, _, _))
      .WillOnce(Invoke([](Http::Code, absl::string_view,
                          std::function<void(Http::ResponseHeaderMap&)> modify_headers, const auto&,
                          absl::string_view) {
        Http::TestResponseHeaderMapImpl response{{":status", "401"}};
        modify_headers(response);
        EXPECT_EQ("*", response.get_("access-control-allow-origin"));
      }));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, BodyGivenToAHeadersOnlyRequestGoesWithTheHeaders) {
  setup(R"JS(export default {
  async onRequest(req) {
    await req.body.text();
    req.body.replace("given");
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  // add*Data in the headers callback: Envoy sends the headers without end of stream, then it.
  EXPECT_CALL(decoder_callbacks_, addDecodedData(_, _))
      .WillOnce(Invoke([this](Buffer::Instance& body, bool) { decoded_.move(body); }));
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ("given", decoded_.toString());
  EXPECT_EQ("5", headers.get_("content-length"));
}

TEST_F(QuickJsFilterTest, ReadOnlyDataHookKeepsContentLength) {
  // The headers wait for the first data, then leave with it; the hook kept its size.
  setup(R"JS(export default { onRequestData(chunk, ctx) { ctx.log.info(chunk.size); } };)JS");
  Http::TestRequestHeaderMapImpl headers{
      {":method", "POST"}, {":path", "/"}, {":authority", "h"}, {"content-length", "5"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, false));
  Buffer::OwnedImpl first("abc");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(first, false));
  EXPECT_EQ("5", headers.get_("content-length"));
  Buffer::OwnedImpl rest("de");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(rest, true));
  EXPECT_EQ("abc", first.toString());
}

TEST_F(QuickJsFilterTest, PendingHookContinuesFromTheScheduledRun) {
  setup(R"JS(export default {
  async onRequest(req) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    req.headers.set("x-late", "1");
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
  // The timer settles the hook; the continue comes from the onScheduled() post that follows.
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  dispatcher_->run(Event::Dispatcher::RunType::Block);
  EXPECT_EQ("1", headers.get_("x-late"));
}

TEST_F(QuickJsFilterTest, DestroyWhilePendingNeverContinues) {
  setup(R"JS(export default {
  async onRequest(req) { await new Promise((resolve) => setTimeout(resolve, 5)); },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  filter_->onDestroy();
  dispatcher_->run(Event::Dispatcher::RunType::Block);
}

TEST_F(QuickJsFilterTest, HostCallsHappenAtOnce) {
  // The runtime makes these calls only from this stream's callbacks and its scheduled run
  // (host.h): the adapter performs them there and then, without a post of its own.
  setup(R"JS(export default {
  async onRequest(req) { await new Promise((resolve) => setTimeout(resolve, 5)); },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  filter_->continueStream(kRequest);
  testing::Mock::VerifyAndClearExpectations(&decoder_callbacks_);
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::Forbidden, "x", _, _, "d"));
  envoy_js::LocalReply reply;
  reply.status = 403;
  reply.body = "x";
  reply.details = "d";
  filter_->sendLocalReply(reply);
  testing::Mock::VerifyAndClearExpectations(&decoder_callbacks_);
  EXPECT_CALL(decoder_callbacks_, resetStream(_, _));
  filter_->resetStream();
}

TEST_F(QuickJsFilterTest, ScheduleMakesOnePostAtATimeAndSkipsAGoneStream) {
  setup(R"JS(export default { onRequest() {} };)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  NiceMock<Event::MockDispatcher> posts;
  ON_CALL(decoder_callbacks_, dispatcher()).WillByDefault(ReturnRef(posts));
  std::vector<Event::PostCb> posted;
  EXPECT_CALL(posts, post(_)).Times(2).WillRepeatedly(Invoke([&posted](Event::PostCb callback) {
    posted.push_back(std::move(callback));
  }));
  filter_->schedule();
  filter_->schedule(); // coalesces with the pending post
  ASSERT_EQ(1, posted.size());
  posted[0](); // Stream::onScheduled(): nothing is due
  filter_->schedule();
  ASSERT_EQ(2, posted.size());
  filter_->onDestroy();
  posted[1](); // the stream went away first: the post must not reach it
  filter_.reset();
}

TEST_F(QuickJsFilterTest, DataBeforeTheScheduledRunMakesTheResumeNeedless) {
  // The hook settles outside any Envoy callback (a callout answers), so the runtime asks for a
  // scheduled run. Before it runs, the last data frame arrives and the filter answers
  // Continue: Envoy resumes by itself, and the runtime does not continue again.
  setup(R"JS(export default {
  async onRequest(req, ctx) { await ctx.fetch("authz", { method: "GET", path: "/check" }); },
};)JS");
  server_.cluster_manager_.initializeThreadLocalClusters({"authz"});
  Http::MockAsyncClient& client = server_.cluster_manager_.thread_local_cluster_.async_client_;
  Http::MockAsyncClientRequest request(&client);
  Http::AsyncClient::Callbacks* callbacks = nullptr;
  EXPECT_CALL(client, send_(_, _, _))
      .WillOnce(
          Invoke([&](Http::RequestMessagePtr&, Http::AsyncClient::Callbacks& cb,
                     const Http::AsyncClient::RequestOptions&) -> Http::AsyncClient::Request* {
            callbacks = &cb;
            return &request;
          }));
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, false));
  ASSERT_NE(nullptr, callbacks);
  callbacks->onSuccess(request,
                       std::make_unique<Http::ResponseMessageImpl>(Http::ResponseHeaderMapPtr{
                           new Http::TestResponseHeaderMapImpl{{":status", "200"}}}));

  EXPECT_CALL(decoder_callbacks_, continueDecoding()).Times(0);
  Buffer::OwnedImpl data("payload");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ("payload", data.toString());
  dispatcher_->run(Event::Dispatcher::RunType::NonBlock);
}

TEST_F(QuickJsFilterTest, ThrowingHookFailsClosedAndCounts) {
  setup(R"JS(export default { onRequest() { throw new Error("boom"); } };)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_,
              sendLocalReply(Http::Code::InternalServerError, _, _, _, "envoy_js_error"));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.envoy_js.errors"));
}

TEST_F(QuickJsFilterTest, ThrowingHookFailsOpen) {
  setup(R"JS(export default { onRequest() { throw new Error("boom"); } };)JS",
        "failure_mode: OPEN\n");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(_, _, _, _, _)).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.envoy_js.errors"));
}

TEST_F(QuickJsFilterTest, WholeBodyReplacedInTheLastDataCallbackGoesOnWithIt) {
  setup(R"JS(export default {
  async onRequest(req) {
    const order = await req.body.json();
    order.seen = true;
    req.body.replace(JSON.stringify(order));
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{
      {":method", "POST"}, {":path", "/orders"}, {":authority", "h"}, {"content-length", "7"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, false));
  EXPECT_CALL(decoder_callbacks_, addDecodedData(_, _)).Times(0);
  Buffer::OwnedImpl data(R"({"a":1})");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ(R"({"a":1,"seen":true})", data.toString());
  EXPECT_EQ(std::to_string(data.length()), headers.get_("content-length"));
}

TEST_F(QuickJsFilterTest, WholeBodyReplacedLaterIsAddedAsAWholeBodyBeforeTheContinue) {
  setup(R"JS(export default {
  async onRequest(req) {
    const text = await req.body.text();
    await new Promise((resolve) => setTimeout(resolve, 1));
    req.body.replace(text.toUpperCase());
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{
      {":method", "POST"}, {":path", "/"}, {":authority", "h"}, {"content-length", "3"}};
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, false));
  Buffer::OwnedImpl data("abc");
  // Held by the adapter, not by Envoy: Envoy gets nothing to buffer from this callback.
  EXPECT_EQ(Http::FilterDataStatus::StopIterationNoBuffer, filter_->decodeData(data, true));
  EXPECT_EQ(0, data.length());
  testing::InSequence order;
  // A whole body: streaming_filter=false, so that Envoy answers 413 over its limit.
  EXPECT_CALL(decoder_callbacks_, addDecodedData(_, false))
      .WillOnce(Invoke([this](Buffer::Instance& body, bool) { decoded_.move(body); }));
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  dispatcher_->run(Event::Dispatcher::RunType::Block);
  EXPECT_EQ("ABC", decoded_.toString());
  EXPECT_EQ("3", headers.get_("content-length"));
}

TEST_F(QuickJsFilterTest, ChunkWrittenAfterEarlierDataWentOnStaysInAdapterMemory) {
  // Chunk "a" goes on at once (in Envoy the next filter then becomes the latest data filter,
  // and modifyDecodingBuffer() from this filter would ASSERT). Chunk "b" is held while its hook
  // waits, written to later from a timer, and handed to Envoy right before the continue.
  setup(R"JS(export default {
  async onRequestData(chunk) {
    if (chunk.text() !== "b") return;
    await new Promise((resolve) => setTimeout(resolve, 1));
    chunk.append("!");
  },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, false));
  Buffer::OwnedImpl a("a");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(a, false));
  EXPECT_EQ("a", a.toString());
  Buffer::OwnedImpl b("b");
  EXPECT_EQ(Http::FilterDataStatus::StopIterationNoBuffer, filter_->decodeData(b, false));
  testing::InSequence order;
  // Still streaming: streaming_filter=true keeps Envoy's watermark behaviour.
  EXPECT_CALL(decoder_callbacks_, addDecodedData(_, true))
      .WillOnce(Invoke([this](Buffer::Instance& body, bool) { decoded_.move(body); }));
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  dispatcher_->run(Event::Dispatcher::RunType::Block);
  EXPECT_EQ("b!", decoded_.toString());
}

TEST_F(QuickJsFilterTest, HeldBytesRaiseAndLowerTheWatermark) {
  setup(R"JS(export default {
  async onRequestData(chunk) { await new Promise((resolve) => setTimeout(resolve, 1)); },
};)JS");
  ON_CALL(decoder_callbacks_, bufferLimit()).WillByDefault(Return(4));
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, false));
  EXPECT_CALL(decoder_callbacks_, onDecoderFilterAboveWriteBufferHighWatermark());
  Buffer::OwnedImpl data("hello");
  EXPECT_EQ(Http::FilterDataStatus::StopIterationNoBuffer, filter_->decodeData(data, false));
  testing::Mock::VerifyAndClearExpectations(&decoder_callbacks_);
  // Handed over and continued: the sender may send again.
  EXPECT_CALL(decoder_callbacks_, onDecoderFilterBelowWriteBufferLowWatermark());
  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  dispatcher_->run(Event::Dispatcher::RunType::Block);
}

TEST_F(QuickJsFilterTest, StreamingChunkIsRewrittenInPlace) {
  setup(
      R"JS(export default { onRequestData(chunk) { chunk.replace(chunk.text().toUpperCase()); } };)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, false));
  Buffer::OwnedImpl data("abc");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ("ABC", data.toString());
}

TEST_F(QuickJsFilterTest, ResponseHookSeesEncoderSide) {
  setup(
      R"JS(export default { onResponse(res) { res.headers.set("x-filtered-by", "envoy-js"); } };)JS");
  Http::TestRequestHeaderMapImpl request = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(request, true));
  Http::TestResponseHeaderMapImpl response{{":status", "200"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, encodeHeaders(response, true));
  EXPECT_EQ("envoy-js", response.get_("x-filtered-by"));
}

TEST_F(QuickJsFilterTest, ResponseHeadersReplacedByALocalReplyAreLookedUpAgain) {
  // A local reply sent after the response headers arrived (sendDirectLocalReply) replaces the
  // response header map and never calls encodeHeaders again; the old map is freed.
  setup(R"JS(export default {
  async onResponse(res) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    res.headers.set("x-late", "1");
  },
};)JS");
  Http::TestRequestHeaderMapImpl request = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(request, true));
  auto upstream = std::make_unique<Http::TestResponseHeaderMapImpl>(
      std::initializer_list<std::pair<std::string, std::string>>{{":status", "200"}});
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, encodeHeaders(*upstream, false));
  Http::TestResponseHeaderMapImpl local_reply{{":status", "503"}};
  response_headers_ = &local_reply; // Envoy's setResponseHeaders()
  upstream.reset();                 // ASan: any use of the old map is a use after free
  dispatcher_->run(Event::Dispatcher::RunType::Block);
  EXPECT_EQ("1", local_reply.get_("x-late"));
  std::string_view value;
  ASSERT_NE(nullptr, filter_->headerMap(envoy_js::HeaderMapKind::ResponseHeaders));
  EXPECT_EQ(
      1, filter_->headerMap(envoy_js::HeaderMapKind::ResponseHeaders)->get(":status", 0, &value));
  EXPECT_EQ("503", value);
}

TEST_F(QuickJsFilterTest, MetadataIsSetAsAStructAndFilterStateAsAString) {
  setup(R"JS(export default {
  onRequest(req, ctx) {
    ctx.metadata.set("envoy.test", "user", { name: "bob" });
    ctx.filterState.set("envoy_js.user", "bob");
    req.headers.set("x-read", ctx.filterState.get("envoy_js.user") ?? "none");
  },
};)JS");
  // MockStreamInfo::setDynamicMetadata has no default action: check the Struct handed over.
  EXPECT_CALL(decoder_callbacks_.stream_info_, setDynamicMetadata("envoy.test", _))
      .WillOnce(Invoke([](const std::string&, const Protobuf::Struct& update) {
        ASSERT_TRUE(update.fields().contains("user"));
        EXPECT_EQ("bob",
                  update.fields().at("user").struct_value().fields().at("name").string_value());
      }));
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  const auto* value =
      decoder_callbacks_.stream_info_.filterState()->getDataReadOnly<Router::StringAccessor>(
          "envoy_js.user");
  ASSERT_NE(nullptr, value);
  EXPECT_EQ("bob", value->asString());
  EXPECT_EQ("bob", headers.get_("x-read"));
}

TEST_F(QuickJsFilterTest, ChunkAddTrailersAddsThemToEnvoyInTheLastDataCallback) {
  setup(R"JS(export default {
  onRequestData(chunk) { if (chunk.endOfStream) chunk.addTrailers().set("x-checksum", "abc"); },
};)JS");
  Http::TestRequestHeaderMapImpl headers{{":method", "POST"}, {":path", "/"}, {":authority", "h"}};
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, false));
  std::string why_not;
  EXPECT_EQ(nullptr, filter_->addTrailers(kRequest, &why_not)); // outside the last data callback
  EXPECT_NE("", why_not);
  Http::TestRequestTrailerMapImpl added;
  EXPECT_CALL(decoder_callbacks_, addDecodedTrailers())
      .WillOnce(Invoke([&]() -> Http::RequestTrailerMap& {
        request_trailers_ = &added;
        return added;
      }));
  Buffer::OwnedImpl data("body");
  EXPECT_EQ(Http::FilterDataStatus::Continue, filter_->decodeData(data, true));
  EXPECT_EQ("abc", added.get_("x-checksum"));
  EXPECT_NE(nullptr, filter_->headerMap(envoy_js::HeaderMapKind::RequestTrailers));
}

TEST_F(QuickJsFilterTest, DeclaredMetricsAreEnvoyStats) {
  setup(R"JS(export default {
  metrics: { hits: "counter" },
  onRequest(req, ctx) { ctx.metrics.hits.inc(); },
};)JS");
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ(1, counter("test.envoy_js.hits"));
}

TEST_F(QuickJsFilterTest, DisabledRouteSkipsTheFilter) {
  setup(R"JS(export default { onRequest() { throw new Error("must not run"); } };)JS");
  envoy_js::RouteOverride route;
  route.disabled = true;
  RouteConfig route_config(route);
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&route_config));
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(_, _, _, _, _)).Times(0);
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ(0, counter("test.envoy_js.errors"));
}

TEST_F(QuickJsFilterTest, RouteConfigIsMergedOverTheFilterConfig) {
  setup(
      R"JS(export default { onRequest(req, ctx) { req.headers.set("x-tag", ctx.config.tag); } };)JS");
  envoy_js::RouteOverride route;
  route.configJson = R"({"tag":"route"})";
  RouteConfig route_config(route);
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&route_config));
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_EQ("route", headers.get_("x-tag"));
}

TEST_F(QuickJsFilterTest, RouteOverrideFollowsTheRouteAfterClearRouteCache) {
  setup(R"JS(export default { onRequest() {} };)JS");
  envoy_js::RouteOverride first;
  first.configJson = R"({"tag":"first"})";
  envoy_js::RouteOverride second;
  second.configJson = R"({"tag":"second"})";
  RouteConfig first_config(first);
  RouteConfig second_config(second);
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&first_config));
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  EXPECT_CALL(decoder_callbacks_.downstream_callbacks_, clearRouteCache());
  filter_->clearRouteCache();
  // Envoy picks the route again on the next lookup: the adapter keeps no copy.
  ON_CALL(decoder_callbacks_, mostSpecificPerFilterConfig()).WillByDefault(Return(&second_config));
  EXPECT_EQ(R"({"tag":"second"})", filter_->routeOverride().configJson);
}

TEST_F(QuickJsFilterTest, SetUpstreamOverrideHostReachesTheDecoderCallbacks) {
  setup(R"JS(export default {
  onRequest(req, ctx) { ctx.setUpstreamOverrideHost("10.0.0.7:8080", { strict: true }); },
};)JS");
  EXPECT_CALL(decoder_callbacks_, setUpstreamOverrideHost(_))
      .WillOnce([](Upstream::LoadBalancerContext::OverrideHost host) {
        EXPECT_EQ("10.0.0.7:8080", host.first);
        EXPECT_TRUE(host.second);
      });
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, FetchIsAChildSpanOfTheStreamThroughTheClustersAsyncClient) {
  setup(R"JS(export default {
  async onRequest(req, ctx) {
    const r = await ctx.fetch("authz", { method: "GET", path: "/check", timeoutMs: 250 });
    req.headers.set("x-user", r.headers.get("x-user") ?? "");
  },
};)JS");
  server_.cluster_manager_.initializeThreadLocalClusters({"authz"});
  Http::MockAsyncClient& client = server_.cluster_manager_.thread_local_cluster_.async_client_;
  Http::MockAsyncClientRequest request(&client);
  Http::AsyncClient::Callbacks* callbacks = nullptr;
  EXPECT_CALL(client, send_(_, _, _))
      .WillOnce(Invoke(
          [&](Http::RequestMessagePtr& message, Http::AsyncClient::Callbacks& cb,
              const Http::AsyncClient::RequestOptions& options) -> Http::AsyncClient::Request* {
            EXPECT_EQ("/check", message->headers().getPathValue());
            EXPECT_EQ(static_cast<Tracing::Span*>(&decoder_callbacks_.active_span_),
                      options.parent_span_);
            EXPECT_EQ("envoy_js fetch authz", options.child_span_name_);
            // Our timer reports the timeout; the client's own comes a second later.
            EXPECT_EQ(1250, options.timeout.value_or(std::chrono::milliseconds(0)).count());
            callbacks = &cb;
            return &request;
          }));

  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
  ASSERT_NE(nullptr, callbacks);

  EXPECT_CALL(decoder_callbacks_, continueDecoding());
  callbacks->onSuccess(
      request, std::make_unique<Http::ResponseMessageImpl>(Http::ResponseHeaderMapPtr{
                   new Http::TestResponseHeaderMapImpl{{":status", "200"}, {"x-user", "bob"}}}));
  dispatcher_->run(Event::Dispatcher::RunType::NonBlock);
  EXPECT_EQ("bob", headers.get_("x-user"));
}

TEST_F(QuickJsFilterTest, ZeroTimeoutMeansNoDeadline) {
  // The runtime refuses timeoutMs 0 from JS; a host call with 0 means no deadline, as an unset
  // timeout does for Envoy's own async client.
  setup(R"JS(export default { onRequest() {} };)JS");
  server_.cluster_manager_.initializeThreadLocalClusters({"authz"});
  Http::MockAsyncClient& client = server_.cluster_manager_.thread_local_cluster_.async_client_;
  Http::MockAsyncClientRequest request(&client);
  EXPECT_CALL(client, send_(_, _, _))
      .WillOnce(Invoke(
          [&](Http::RequestMessagePtr&, Http::AsyncClient::Callbacks&,
              const Http::AsyncClient::RequestOptions& options) -> Http::AsyncClient::Request* {
            EXPECT_FALSE(options.timeout.has_value());
            return &request;
          }));
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_EQ(Http::FilterHeadersStatus::Continue, decodeHeaders(headers, true));
  envoy_js::CalloutRequest callout;
  callout.cluster = "authz";
  callout.headers = {{":method", "GET"}, {":path", "/"}, {":authority", "authz"}};
  callout.timeoutMs = 0;
  EXPECT_EQ(envoy_js::CalloutStart::Started, filter_->startCallout(1000, callout));
  EXPECT_CALL(request, cancel());
  filter_->cancelCallout(1000);
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
  Http::TestRequestHeaderMapImpl headers = getRequest();
  EXPECT_CALL(decoder_callbacks_, sendLocalReply(Http::Code::BadGateway, _, _, _, "fetch_failed"));
  EXPECT_EQ(Http::FilterHeadersStatus::StopIteration, decodeHeaders(headers, true));
}

TEST_F(QuickJsFilterTest, SyntaxErrorRejectsTheConfigWithItsLocation) {
  EXPECT_THROW_WITH_REGEX(setup("export default { onRequest( };"), EnvoyException,
                          "<inline source>:1:[0-9]+: ");
}

TEST_F(QuickJsFilterTest, SettingsOutOfRangeRejectTheConfig) {
  EXPECT_THROW_WITH_REGEX(setup("export default {};", "max_heap_bytes: 1\n"), EnvoyException,
                          "max_heap_bytes");
}

} // namespace
} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
