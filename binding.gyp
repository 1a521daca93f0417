{
  "targets": [{
    "target_name": "irconstyle",
    "sources": ["<!@(node scripts/sources.mjs)"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wno-psabi"],
    "libraries": ["-lpthread", "-ldl"]
  }]
}
