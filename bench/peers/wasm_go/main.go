// The proxy-wasm peer of `make bench-envoy`: the four jobs as one Proxy-Wasm plugin, written with
// the proxy-wasm Go SDK and built by Go's own wasip1 target (go:wasmexport, Go >= 1.24):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o peer.wasm .
//
// The plugin configuration (a plain string) names the job: header_rewrite, async_callout,
// body_transform or passthrough_1mib. Each job does what the envoy-js, Lua and dynamic-module
// peers do (bench/peers/*), nothing more.
package main

import (
	"bytes"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

type job int

const (
	jobHeaderRewrite job = iota
	jobAsyncCallout
	jobBodyTransform
	jobPassthrough
)

var jobNames = map[string]job{
	"header_rewrite":   jobHeaderRewrite,
	"async_callout":    jobAsyncCallout,
	"body_transform":   jobBodyTransform,
	"passthrough_1mib": jobPassthrough,
}

func main() {}

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext { return &plugin{} })
}

type plugin struct {
	types.DefaultPluginContext
	job job
}

func (p *plugin) OnPluginStart(size int) types.OnPluginStartStatus {
	conf, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogCriticalf("bench peer: no plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	j, ok := jobNames[string(conf)]
	if !ok {
		proxywasm.LogCriticalf("bench peer: unknown job %q", string(conf))
		return types.OnPluginStartStatusFailed
	}
	p.job = j
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext {
	switch p.job {
	case jobHeaderRewrite:
		return &headerRewrite{}
	case jobAsyncCallout:
		return &asyncCallout{}
	case jobBodyTransform:
		return &bodyTransform{}
	default:
		return &passthrough{}
	}
}

// header_rewrite: read one request header, set two, remove one.
type headerRewrite struct{ types.DefaultHttpContext }

func (*headerRewrite) OnHttpRequestHeaders(int, bool) types.Action {
	v, err := proxywasm.GetHttpRequestHeader("x-bench-in")
	if err != nil {
		v = "none"
	}
	_ = proxywasm.ReplaceHttpRequestHeader("x-bench-copy", v)
	_ = proxywasm.ReplaceHttpRequestHeader("x-bench-filter", "wasm_go")
	_ = proxywasm.RemoveHttpRequestHeader("x-bench-drop")
	return types.ActionContinue
}

// async_callout: one GET to the "callout" cluster per request; its status goes upstream.
type asyncCallout struct{ types.DefaultHttpContext }

var calloutHeaders = [][2]string{{":method", "GET"}, {":path", "/callout"}, {":authority", "callout"}}

func (*asyncCallout) OnHttpRequestHeaders(int, bool) types.Action {
	_, err := proxywasm.DispatchHttpCall("callout", calloutHeaders, nil, nil, 5000, func(int, int, int) {
		status := "none"
		if hs, err := proxywasm.GetHttpCallResponseHeaders(); err == nil {
			for _, h := range hs {
				if h[0] == ":status" {
					status = h[1]
				}
			}
		}
		_ = proxywasm.ReplaceHttpRequestHeader("x-callout-status", status)
		_ = proxywasm.ResumeHttpRequest()
	})
	if err != nil {
		_ = proxywasm.SendHttpResponse(500, nil, []byte("callout failed\n"), -1)
		return types.ActionPause
	}
	return types.ActionPause
}

// body_transform: upper-case every response body chunk, in place of the chunk.
type bodyTransform struct{ types.DefaultHttpContext }

func (*bodyTransform) OnHttpResponseBody(size int, end bool) types.Action {
	if size == 0 {
		return types.ActionContinue
	}
	b, err := proxywasm.GetHttpResponseBody(0, size)
	if err != nil {
		return types.ActionContinue
	}
	_ = proxywasm.ReplaceHttpResponseBody(bytes.ToUpper(b))
	return types.ActionContinue
}

// passthrough_1mib: a response data hook that does not read the data.
type passthrough struct{ types.DefaultHttpContext }

func (*passthrough) OnHttpResponseBody(int, bool) types.Action { return types.ActionContinue }
