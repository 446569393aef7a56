// The native dynamic-module peer of `make bench-envoy`: the four jobs as HTTP filters of one
// Envoy dynamic module, written against Envoy's Go dynamic-modules SDK (the module
// github.com/envoyproxy/envoy/source/extensions/dynamic_modules, cgo) and built as a C shared
// object that a stock Envoy loads like libenvoy_js.so:
//
//	go build -buildmode=c-shared -o libbench_dynmod.so .
//
// The filter_name in Envoy's config picks the job: header_rewrite, async_callout,
// body_transform or passthrough_1mib. Each job does what the envoy-js, Lua and Wasm peers do
// (bench/peers/*), nothing more.
package main

import (
	"bytes"
	"strconv"

	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi" // the exported hooks
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

func main() {}

func init() {
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		"header_rewrite":   configFactory(func(shared.HttpFilterHandle) shared.HttpFilter { return &headerRewrite{} }),
		"async_callout":    configFactory(func(h shared.HttpFilterHandle) shared.HttpFilter { return &asyncCallout{handle: h} }),
		"body_transform":   configFactory(func(shared.HttpFilterHandle) shared.HttpFilter { return &bodyTransform{} }),
		"passthrough_1mib": configFactory(func(shared.HttpFilterHandle) shared.HttpFilter { return &passthrough{} }),
	})
}

// configFactory: a job needs no configuration; each stream gets a new filter from newFilter.
type configFactory func(shared.HttpFilterHandle) shared.HttpFilter

func (f configFactory) Create(shared.HttpFilterConfigHandle, []byte) (shared.HttpFilterFactory, error) {
	return filterFactory(f), nil
}

func (f configFactory) CreatePerRoute([]byte) (any, error) { return nil, nil }

type filterFactory func(shared.HttpFilterHandle) shared.HttpFilter

func (f filterFactory) Create(h shared.HttpFilterHandle) shared.HttpFilter { return f(h) }
func (f filterFactory) OnDestroy()                                         {}

// header_rewrite: read one request header, set two, remove one.
type headerRewrite struct{ shared.EmptyHttpFilter }

func (*headerRewrite) OnRequestHeaders(headers shared.HeaderMap, _ bool) shared.HeadersStatus {
	v := "none"
	if vs := headers.Get("x-bench-in"); len(vs) > 0 {
		v = vs[0].ToString()
	}
	headers.Set("x-bench-copy", v)
	headers.Set("x-bench-filter", "dynmod")
	headers.Remove("x-bench-drop")
	return shared.HeadersStatusContinue
}

// async_callout: one GET to the "callout" cluster per request; its status goes upstream.
type asyncCallout struct {
	shared.EmptyHttpFilter
	handle shared.HttpFilterHandle
}

var calloutHeaders = [][2]string{{":method", "GET"}, {":path", "/callout"}, {":authority", "callout"}}

func (f *asyncCallout) OnRequestHeaders(shared.HeaderMap, bool) shared.HeadersStatus {
	if r, _ := f.handle.HttpCallout("callout", calloutHeaders, nil, 5000, f); r != shared.HttpCalloutInitSuccess {
		f.handle.SendLocalResponse(500, nil, []byte("callout failed: "+strconv.Itoa(int(r))+"\n"), "callout_failed")
	}
	return shared.HeadersStatusStopAllAndWatermark
}

func (f *asyncCallout) OnHttpCalloutDone(_ uint64, result shared.HttpCalloutResult, headers [][2]shared.UnsafeEnvoyBuffer, _ []shared.UnsafeEnvoyBuffer) {
	status := "none"
	if result == shared.HttpCalloutSuccess {
		for _, h := range headers {
			if h[0].ToUnsafeString() == ":status" {
				status = h[1].ToString()
			}
		}
	}
	f.handle.RequestHeaders().Set("x-callout-status", status)
	f.handle.ContinueRequest()
}

// body_transform: upper-case every response body chunk, in place of the chunk.
type bodyTransform struct{ shared.EmptyHttpFilter }

func (*bodyTransform) OnResponseBody(body shared.BodyBuffer, _ bool) shared.BodyStatus {
	size := body.GetSize()
	if size == 0 {
		return shared.BodyStatusContinue
	}
	data := make([]byte, 0, size)
	for _, c := range body.GetChunks() {
		data = append(data, c.ToUnsafeBytes()...)
	}
	upper := bytes.ToUpper(data)
	body.Drain(size)
	body.Append(upper)
	return shared.BodyStatusContinue
}

// passthrough_1mib: a response data hook that does not read the data.
type passthrough struct{ shared.EmptyHttpFilter }

func (*passthrough) OnResponseBody(shared.BodyBuffer, bool) shared.BodyStatus {
	return shared.BodyStatusContinue
}
