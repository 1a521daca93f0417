// The only file that includes napi.h: a dozen generic entry points. Tensors cross as integer handle ids
// (per environment table); ops run by id with numeric attrs; reads resolve Promises from the executor thread.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "../core/executor.h"
#include "../cpu/gemm.h"
#include "../cuda/device.h"
#include "../cuda/gpu_libs.h"
#include "../cuda/probe.h"
#include "../ops/switches.h"

namespace irc {
namespace {

struct Done {
  uint64_t promise_id;
  std::string error;
  std::vector<char> bytes;
  bool is_read;
  double number = 0;  // resolves with this number when !is_read and has_number
  bool has_number = false;
};

struct Instance {
  std::unordered_map<uint32_t, TensorP> handles;
  uint32_t next_handle = 1;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> promises;
  uint64_t next_promise = 1;
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;
};

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& msg, const char* op = nullptr) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  if (op) e.Set("op", Napi::String::New(env, op));
  return e;
}

// Errors recorded on the queue look like "E_CODE: op: message".
Napi::Error queue_error(Napi::Env env, const std::string& s) {
  size_t c = s.find(": ");
  if (c != std::string::npos && s.rfind("E_", 0) == 0) {
    std::string rest = s.substr(c + 2);
    size_t c2 = rest.find(": ");
    Napi::Error e = make_error(env, s.substr(0, c), rest);
    if (c2 != std::string::npos) e.Set("op", Napi::String::New(env, rest.substr(0, c2)));
    return e;
  }
  return make_error(env, "E_INTERNAL", s);
}

Instance& inst(const Napi::Env& env) { return *env.GetInstanceData<Instance>(); }

TensorP get_tensor(Instance& I, const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsNumber()) throw make_error(env, "E_ARG", "expected a tensor handle (number), got " + std::string(v.IsNull() ? "null" : v.IsUndefined() ? "undefined" : "another type"));
  uint32_t id = v.As<Napi::Number>().Uint32Value();
  auto it = I.handles.find(id);
  if (it == I.handles.end()) throw make_error(env, "E_DISPOSED", "tensor #" + std::to_string(id) + " was disposed");
  return it->second;
}

uint32_t add_handle(Instance& I, TensorP t) {
  uint32_t id = I.next_handle++;
  if (t && t->storage) ++t->storage->js_handles;
  I.handles.emplace(id, std::move(t));
  return id;
}

// Releases handle id (false when there was none).
bool drop_handle(Instance& I, uint32_t id) {
  auto it = I.handles.find(id);
  if (it == I.handles.end()) return false;
  if (it->second && it->second->storage) --it->second->storage->js_handles;
  I.handles.erase(it);
  return true;
}

Shape read_shape(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsArray()) throw make_error(env, "E_ARG", "shape must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  Shape s;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != static_cast<double>(static_cast<int64_t>(x)))
      throw make_error(env, "E_SHAPE", "shape entries must be non-negative integers, got entry " + std::to_string(i));
    s.push_back(static_cast<int64_t>(x));
  }
  return s;
}

Device read_device(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return Device::cpu;
  int d = info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : -1;
  if (d != 0 && d != 1) throw make_error(info.Env(), "E_ARG", "device must be 0 (cpu) or 1 (cuda)");
  return d == 1 ? Device::cuda : Device::cpu;
}

// Runs fn, turning OpError into a JS error with its code (and the op name when given).
template <typename F>
auto guarded(Napi::Env env, const char* op, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const OpError& e) {
    throw make_error(env, e.code, e.msg, op);
  } catch (const std::bad_alloc&) {
    throw make_error(env, "E_OOM", std::string(op ? op : "irconstyle") + ": out of memory", op);
  }
}

void on_done(Napi::Env env, Napi::Function, Done* d) {
  Instance& I = inst(env);
  auto it = I.promises.find(d->promise_id);
  if (it != I.promises.end()) {
    if (!d->error.empty()) {
      it->second.Reject(queue_error(env, d->error).Value());
    } else if (d->is_read) {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, d->bytes.size());
      if (!d->bytes.empty()) std::memcpy(ab.Data(), d->bytes.data(), d->bytes.size());
      it->second.Resolve(ab);
    } else if (d->has_number) {
      it->second.Resolve(Napi::Number::New(env, d->number));
    } else {
      it->second.Resolve(env.Undefined());
    }
    I.promises.erase(it);
  }
  delete d;
  if (--I.pending == 0) I.tsfn.Unref(env);
}

Napi::Promise new_promise(Napi::Env env, uint64_t& id) {
  Instance& I = inst(env);
  auto def = Napi::Promise::Deferred::New(env);
  id = I.next_promise++;
  I.promises.emplace(id, def);
  if (I.pending++ == 0) I.tsfn.Ref(env);
  return def.Promise();
}

void post(Napi::ThreadSafeFunction tsfn, Done* d) {
  if (tsfn.NonBlockingCall(d, on_done) != napi_ok) delete d;
}

// ---- entry points -----------------------------------------------------------------------------------------

Napi::Value FromData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray())
    throw make_error(env, "E_ARG", "fromData(data, shape): data must be a Float32Array or Int32Array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  DType dt;
  if (ta.TypedArrayType() == napi_float32_array) dt = DType::f32;
  else if (ta.TypedArrayType() == napi_int32_array) dt = DType::i32;
  else throw make_error(env, "E_DTYPE", "fromData: expected a Float32Array or Int32Array, got another typed array");
  Shape s = read_shape(env, info[1]);
  if (numel(s) != static_cast<int64_t>(ta.ElementLength()))
    throw make_error(env, "E_SHAPE", "fromData: shape " + shape_str(s) + " holds " + std::to_string(numel(s)) +
                                         " elements, data has " + std::to_string(ta.ElementLength()));
  Device dev = read_device(info, 2);
  const char* src = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  TensorP t = guarded(env, nullptr, [&] {
    refuse_in_capture("making a tensor from host data");
    TensorP r = new_tensor(s, dt, dev);
    if (dev == Device::cuda) cudev::upload(r->ptr(), src, r->bytes());
    else if (r->bytes()) std::memcpy(r->ptr(), src, r->bytes());
    return r;
  });
  return Napi::Number::New(env, add_handle(inst(env), t));
}

Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& I = inst(env);
  int id = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  const OpEntry* op = op_entry(id);
  if (!op) throw make_error(env, "E_ARG", "run: unknown op id " + std::to_string(id));
  if (!info[1].IsArray()) throw make_error(env, "E_ARG", std::string(op->name) + ": inputs must be an array", op->name);
  Napi::Array ins = info[1].As<Napi::Array>();
  std::vector<TensorP> inputs;
  for (uint32_t i = 0; i < ins.Length(); ++i) inputs.push_back(get_tensor(I, env, ins.Get(i)));
  std::vector<double> attrs;
  if (info.Length() > 2 && info[2].IsArray()) {
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) attrs.push_back(a.Get(i).ToNumber().DoubleValue());
  }
  Device dev = read_device(info, 3);
  std::vector<TensorP> outs = guarded(env, op->name, [&] { return submit_op(*op, std::move(inputs), std::move(attrs), dev); });
  // Flat result: for each output: handle, dtype, rank, dims...
  Napi::Array res = Napi::Array::New(env);
  uint32_t k = 0;
  for (auto& o : outs) {
    res.Set(k++, add_handle(I, o));
    res.Set(k++, static_cast<int>(o->dtype));
    res.Set(k++, static_cast<double>(o->shape.size()));
    for (int64_t d : o->shape) res.Set(k++, static_cast<double>(d));
  }
  return res;
}

Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& I = inst(env);
  TensorP t = get_tensor(I, env, info[0]);
  double off = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  Shape s = read_shape(env, info[2]);
  int64_t avail = static_cast<int64_t>(t->storage->bytes / dtype_size(t->dtype)) - t->offset;
  if (!(off >= 0) || static_cast<int64_t>(off) + numel(s) > avail)
    throw make_error(env, "E_SHAPE", "view: offset " + std::to_string(static_cast<int64_t>(off)) + " + shape " +
                                         shape_str(s) + " exceeds the " + std::to_string(avail) + " elements of tensor " +
                                         shape_str(t->shape));
  auto v = std::make_shared<Tensor>(*t);
  v->offset = t->offset + static_cast<int64_t>(off);
  v->shape = s;
  return Napi::Number::New(env, add_handle(I, v));
}

// to(id, device): a copy on another device (or the same one), ordered after the work that writes it.
Napi::Value To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& I = inst(env);
  TensorP t = get_tensor(I, env, info[0]);
  Device dev = read_device(info, 1);
  TensorP out = guarded(env, "to", [&] { return copy_to_device(t, dev); });
  return Napi::Number::New(env, add_handle(I, out));
}

// device(id): 0 cpu, 1 cuda.
Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<int>(get_tensor(inst(env), env, info[0])->device()));
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& I = inst(env);
  TensorP t = get_tensor(I, env, info[0]);
  guarded(env, nullptr, [&] {
    refuse_in_capture("reading a tensor");
    refuse_orphan(*t, "reading a tensor");
  });
  uint64_t pid;
  Napi::Promise p = new_promise(env, pid);
  Napi::ThreadSafeFunction tsfn = I.tsfn;
  if (t->device() == Device::cuda) {
    guarded(env, nullptr, [&] {
      cudev::download(t->ptr(), t->bytes(), [t, pid, tsfn](const char* data, size_t n, const std::string& error) {
        Done* d = new Done{pid, error.empty() ? t->storage->error : error, {}, true};
        if (d->error.empty()) d->bytes.assign(data, data + n);
        post(tsfn, d);
      });
    });
    return p;
  }
  enqueue([t, pid, tsfn]() {
    Done* d = new Done{pid, t->storage->error, {}, true};
    if (d->error.empty()) {
      try {  // the copy may not fit in memory: the promise rejects rather than never settling
        const char* src = static_cast<const char*>(t->ptr());
        d->bytes.assign(src, src + t->bytes());
      } catch (...) {
        d->error = error_text("data()");
      }
    }
    post(tsfn, d);
  });
  return p;
}

Napi::Value Sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  guarded(env, nullptr, [] { refuse_in_capture("sync()"); });
  uint64_t pid;
  Napi::Promise p = new_promise(env, pid);
  Napi::ThreadSafeFunction tsfn = inst(env).tsfn;
  if (read_device(info, 0) == Device::cuda) {
    guarded(env, nullptr, [&] { cudev::when_done([pid, tsfn](const std::string& e) { post(tsfn, new Done{pid, e, {}, false}); }); });
    return p;
  }
  enqueue([pid, tsfn]() { post(tsfn, new Done{pid, "", {}, false}); });
  return p;
}

// Measured FMA peak of the thread pool in GFLOP/s (runs on the executor, so it never races kernels).
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t pid;
  Napi::Promise p = new_promise(env, pid);
  Napi::ThreadSafeFunction tsfn = inst(env).tsfn;
  enqueue([pid, tsfn]() {
    Done* d = new Done{pid, "", {}, false};
    d->number = measure_fma_peak_gflops();
    d->has_number = true;
    post(tsfn, d);
  });
  return p;
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return Napi::Boolean::New(env, false);
  if (!profiling()) return Napi::Boolean::New(env, drop_handle(inst(env), info[0].As<Napi::Number>().Uint32Value()));
  auto t0 = std::chrono::steady_clock::now();  // profiling: dispose time (storage release) counted apart
  bool erased = drop_handle(inst(env), info[0].As<Napi::Number>().Uint32Value());
  profile_dispose(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  return Napi::Boolean::New(env, erased);
}

// soleView(id): whether no other live handle (a view) shares the storage of tensor id. Ops still queued that hold
// it or a released view do not count: they run before anything submitted later. (Counting the storage's owners
// instead made the answer depend on how far the CPU executor had got: a view released in JS but still held by a
// queued op counted.)
Napi::Value SoleView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorP t = get_tensor(inst(env), env, info[0]);
  return Napi::Boolean::New(env, t->storage->js_handles == 1);
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemStats m = mem_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("tensors", static_cast<double>(inst(env).handles.size()));
  o.Set("storages", static_cast<double>(m.live_storages));
  o.Set("bytes", static_cast<double>(m.live_bytes));
  o.Set("cachedBytes", static_cast<double>(m.cached_bytes));
  o.Set("peakBytes", static_cast<double>(m.peak_bytes));
  o.Set("cudaBytes", static_cast<double>(cudev::live_bytes()));
  o.Set("cudaGraphBytes", static_cast<double>(cudev::graph_bytes()));
  o.Set("cudaScratchBytes", static_cast<double>(cudev::scratch_bytes()));
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  CudaProbe p = cuda_probe();
  Napi::Object c = Napi::Object::New(env);
  c.Set("compiled", p.compiled);
  c.Set("devices", p.devices);
  c.Set("name", p.name);
  c.Set("error", p.error);
  Napi::Array cops = Napi::Array::New(env);
  uint32_t nc = 0;
  for (int i = 0; i < op_count(); ++i)
    if (op_entry(i)->cuda) cops.Set(nc++, op_entry(i)->name);
  c.Set("ops", cops);
  o.Set("cuda", c);
  const char* env_threads = std::getenv("IRCONSTYLE_THREADS");
  int threads = env_threads ? std::atoi(env_threads) : 0;
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  o.Set("threads", threads);
  __builtin_cpu_init();
  std::string simd = __builtin_cpu_supports("avx512f") ? "avx512" : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "avx2" : "scalar";
  o.Set("simd", simd);
  o.Set("gemm", sgemm_isa());
  Napi::Array names = Napi::Array::New(env, op_count());
  for (int i = 0; i < op_count(); ++i) names.Set(static_cast<uint32_t>(i), op_entry(i)->name);
  o.Set("ops", names);
  return o;
}

Napi::Value OpCounts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, op_count());
  for (int i = 0; i < op_count(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(op_submissions(i)));
  return a;
}

// profileShapes() returns [{op, ms, calls}] of the last profile started with profile(true, true), split by op and
// shapes ("op [in0] -> [out0]").
Napi::Value ProfileShapes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t k = 0;
  for (auto& r : shape_profile()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("op", r.key);
    o.Set("ms", static_cast<double>(r.ns) / 1e6);
    o.Set("calls", static_cast<double>(r.calls));
    a.Set(k++, o);
  }
  return a;
}

// profile(true|false[, byShape[, exact]]) switches kernel timing on (resetting it) or off; profile() returns
// [{op, ms, calls}] for every op that ran while it was on. exact (CUDA): the stream waits while each op is enqueued.
Napi::Value Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsBoolean()) {
    if (info[0].As<Napi::Boolean>().Value()) guarded(env, nullptr, [] { refuse_in_capture("profiling"); });
    set_profiling(info[0].As<Napi::Boolean>().Value(), info.Length() > 1 && info[1].ToBoolean().Value(),
                  info.Length() > 2 && info[2].ToBoolean().Value());
    return env.Undefined();
  }
  Napi::Array a = Napi::Array::New(env);
  uint32_t k = 0;
  for (int i = 0; i < op_count(); ++i) {
    uint64_t ns, calls, host;
    op_profile(i, ns, calls, host);
    if (!calls && !host) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("op", op_entry(i)->name);
    o.Set("ms", static_cast<double>(ns) / 1e6);
    o.Set("calls", static_cast<double>(calls));
    o.Set("hostMs", static_cast<double>(host) / 1e6);
    a.Set(k++, o);
  }
  Napi::Object d = Napi::Object::New(env);  // releasing tensors (storage frees) while profiling
  d.Set("op", "(dispose)");
  d.Set("ms", 0.0);
  d.Set("calls", 0.0);
  d.Set("hostMs", static_cast<double>(dispose_ns()) / 1e6);
  a.Set(k++, d);
  return a;
}

// cudaInit(): initialises the CUDA runtime (device 0, the stream); returns "" or why it is unusable.
Napi::Value CudaInit(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cudev::available() ? "" : cudev::why());
}

// gpuLibs(): which cuBLAS/cuDNN were found (loading them on first call; needs CUDA to be usable).
Napi::Value GpuLibs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), gpu::report());
}

Napi::Value Trim(const Napi::CallbackInfo& info) {
  pool_trim();
  reset_peak();
  return info.Env().Undefined();
}

// setSwitch(name, value | null): a kernel switch's value where the environment leaves it unset (null clears it).
Napi::Value SetSwitch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !(info[1].IsString() || info[1].IsNull()))
    throw make_error(env, "E_ARG", "setSwitch(name, value): expected a string name and a string or null value");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.rfind("IRCONSTYLE_", 0) != 0)
    throw make_error(env, "E_ARG", "setSwitch: expected a name starting with IRCONSTYLE_, got '" + name + "'");
  const std::string value = info[1].IsNull() ? "" : info[1].As<Napi::String>().Utf8Value();
  set_switch(name, info[1].IsNull() ? nullptr : value.c_str());
  return env.Undefined();
}

// captureBegin(device): opens a graph capture (see executor.h).
Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {
  Device dev = read_device(info, 0);
  guarded(info.Env(), nullptr, [&] { capture_begin(dev); });
  return info.Env().Undefined();
}

// captureSeal(): CPU captures only; see executor.h.
Napi::Value CaptureSeal(const Napi::CallbackInfo& info) {
  guarded(info.Env(), nullptr, [] { capture_seal(); });
  return info.Env().Undefined();
}

struct Graph {
  void* exec = nullptr;
  std::vector<std::shared_ptr<Storage>> kept;  // memory made before the capture that the graph reads or writes
};

// captureEnd(keep): closes the capture. With keep: a graph handle (CUDA), null (CPU), or throws E_CAPTURE.
Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool keep = info.Length() > 0 && info[0].ToBoolean().Value();
  std::vector<std::shared_ptr<Storage>> kept;
  void* exec = guarded(env, nullptr, [&] { return capture_end(keep, &kept); });
  if (!exec) return env.Null();
  return Napi::External<Graph>::New(env, new Graph{exec, std::move(kept)}, [](Napi::Env, Graph* g) {
    cudev::graph_destroy(g->exec);
    delete g;  // then its storages: their frees are stream-ordered after any replay in flight
  });
}

Graph* get_graph(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw make_error(info.Env(), "E_ARG", "expected a graph handle");
  return info[0].As<Napi::External<Graph>>().Data();
}

// graphLaunch(graph): enqueues one replay on the stream.
Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  Graph* g = get_graph(info);
  if (!g->exec) throw make_error(info.Env(), "E_DISPOSED", "the graph was destroyed");
  guarded(info.Env(), nullptr, [&] {
    refuse_in_capture("replaying a graph");
    cudev::graph_launch(g->exec);
  });
  return info.Env().Undefined();
}

// graphDestroy(graph): frees it now rather than at garbage collection (a replay in flight still completes).
Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  Graph* g = get_graph(info);
  cudev::graph_destroy(g->exec);
  g->exec = nullptr;
  g->kept.clear();
  return info.Env().Undefined();
}

}  // namespace
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* I = new Instance();
  env.SetInstanceData<Instance>(I);
  I->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "irconstyle-executor", 0, 1);
  I->tsfn.Unref(env);
  env.AddCleanupHook([I]() {
    executor_stop();
    I->handles.clear();
    I->tsfn.Abort();
  });
  exports.Set("fromData", Napi::Function::New(env, FromData));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("view", Napi::Function::New(env, View));
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("to", Napi::Function::New(env, To));
  exports.Set("deviceOf", Napi::Function::New(env, DeviceOf));
  exports.Set("cudaInit", Napi::Function::New(env, CudaInit));
  exports.Set("gpuLibs", Napi::Function::New(env, GpuLibs));
  exports.Set("sync", Napi::Function::New(env, Sync));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("soleView", Napi::Function::New(env, SoleView));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("trim", Napi::Function::New(env, Trim));
  exports.Set("profile", Napi::Function::New(env, Profile));
  exports.Set("profileShapes", Napi::Function::New(env, ProfileShapes));
  exports.Set("profiling", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Boolean::New(info.Env(), profiling());
  }));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak));
  exports.Set("opCounts", Napi::Function::New(env, OpCounts));
  exports.Set("setSwitch", Napi::Function::New(env, SetSwitch));
  exports.Set("captureBegin", Napi::Function::New(env, CaptureBegin));
  exports.Set("captureEnd", Napi::Function::New(env, CaptureEnd));
  exports.Set("captureSeal", Napi::Function::New(env, CaptureSeal));
  exports.Set("graphLaunch", Napi::Function::New(env, GraphLaunch));
  exports.Set("graphDestroy", Napi::Function::New(env, GraphDestroy));
  return exports;
}

}  // namespace irc

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return irc::Init(env, exports); }
NODE_API_MODULE(irconstyle, InitModule)
