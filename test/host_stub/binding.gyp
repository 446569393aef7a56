{
  "targets": [
    {
      "target_name": "envoy_js_host",
      "sources": ["addon.cc", "scripted_host.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../../third_party/quickjs-ng"
      ],
      "libraries": ["<(module_root_dir)/../../build/release/libenvoy_js_runtime.a"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-O2", "-fvisibility=hidden"],
      "ldflags": ["-Wl,-Bsymbolic", "-Wl,--exclude-libs,ALL"]
    }
  ]
}
