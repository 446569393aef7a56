// A real Envoy (HttpIntegrationTest) with envoy.filters.http.quickjs in front of the router and
// a fake upstream: requests go through QuickJS on the worker thread.
#include <string>

#include "test/integration/http_integration.h"
#include "test/test_common/utility.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace Envoy {
namespace {

// API-key check, credential stripping, a whole-body rewrite and a response header: the same
// shape as samples/hello, written as a plain ES module so that no SDK build is needed.
constexpr absl::string_view kFilterJs = R"JS(export default {
  async onRequest(req, ctx) {
    const key = req.headers.get(ctx.config.header);
    if (key === null) return ctx.respond(401, { body: "missing key\n", details: "no_api_key" });
    req.headers.delete(ctx.config.header);
    req.headers.set("x-client", ctx.config.keys[key] ?? "unknown");
    if (req.method === "POST") {
      const order = await req.body.json();
      order.checked = true;
      req.body.replace(JSON.stringify(order));
    }
  },
  onResponse(res) {
    res.headers.set("x-filtered-by", "envoy-js");
  },
};)JS";

class QuickJsIntegrationTest : public testing::TestWithParam<Network::Address::IpVersion>,
                               public HttpIntegrationTest {
public:
  QuickJsIntegrationTest() : HttpIntegrationTest(Http::CodecType::HTTP1, GetParam()) {}

  void initialize() override {
    std::string source;
    for (absl::string_view line : absl::StrSplit(kFilterJs, '\n')) {
      absl::StrAppend(&source, "          ", line, "\n");
    }
    config_helper_.prependFilter(absl::StrCat(R"EOF(
name: envoy.filters.http.quickjs
typed_config:
  "@type": type.googleapis.com/envoyjs.filters.http.quickjs.v1.QuickJs
  source:
    local:
      inline_string: |
)EOF",
                                              source, R"EOF(
  config:
    header: x-api-key
    keys: { k-123: shop-frontend }
)EOF"));
    HttpIntegrationTest::initialize();
  }
};

INSTANTIATE_TEST_SUITE_P(IpVersions, QuickJsIntegrationTest,
                         testing::ValuesIn(TestEnvironment::getIpVersionsForTest()),
                         TestUtility::ipTestParamsToString);

TEST_P(QuickJsIntegrationTest, HeadersAreRewrittenBothWays) {
  initialize();
  codec_client_ = makeHttpConnection(lookupPort("http"));
  Http::TestRequestHeaderMapImpl request{{":method", "GET"},
                                         {":path", "/products"},
                                         {":scheme", "http"},
                                         {":authority", "shop.example"},
                                         {"x-api-key", "k-123"}};
  auto response = sendRequestAndWaitForResponse(request, 0, default_response_headers_, 0);
  EXPECT_EQ("shop-frontend", upstream_request_->headers()
                                 .get(Http::LowerCaseString("x-client"))[0]
                                 ->value()
                                 .getStringView());
  EXPECT_TRUE(upstream_request_->headers().get(Http::LowerCaseString("x-api-key")).empty());
  EXPECT_TRUE(response->complete());
  EXPECT_EQ("200", response->headers().getStatusValue());
  EXPECT_EQ(
      "envoy-js",
      response->headers().get(Http::LowerCaseString("x-filtered-by"))[0]->value().getStringView());
}

TEST_P(QuickJsIntegrationTest, MissingKeyGetsALocalReply) {
  initialize();
  codec_client_ = makeHttpConnection(lookupPort("http"));
  Http::TestRequestHeaderMapImpl request{{":method", "GET"},
                                         {":path", "/products"},
                                         {":scheme", "http"},
                                         {":authority", "shop.example"}};
  auto response = codec_client_->makeHeaderOnlyRequest(request);
  ASSERT_TRUE(response->waitForEndStream());
  EXPECT_EQ("401", response->headers().getStatusValue());
  EXPECT_EQ("missing key\n", response->body());
}

TEST_P(QuickJsIntegrationTest, WholeBodyIsRewrittenBeforeTheUpstreamSeesIt) {
  initialize();
  codec_client_ = makeHttpConnection(lookupPort("http"));
  Http::TestRequestHeaderMapImpl request{
      {":method", "POST"},    {":path", "/orders"},
      {":scheme", "http"},    {":authority", "shop.example"},
      {"x-api-key", "k-123"}, {"content-type", "application/json"}};
  auto response = codec_client_->makeRequestWithBody(request, R"({"item":"tea"})");
  waitForNextUpstreamRequest();
  EXPECT_EQ(R"({"item":"tea","checked":true})", upstream_request_->body().toString());
  upstream_request_->encodeHeaders(default_response_headers_, true);
  ASSERT_TRUE(response->waitForEndStream());
  EXPECT_EQ("200", response->headers().getStatusValue());
}

} // namespace
} // namespace Envoy
