// Helpers declared in ops/op_api.h: shape utilities, errors, attribute and meta checks.
#include "../ops/op_api.h"
#include "../ops/switches.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <sstream>

namespace irc {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

const char* dtype_name(DType d) { return d == DType::f32 ? "float32" : "int32"; }

void op_fail(const char* code, const std::string& msg) { throw OpError(code, msg); }

static std::string where(const char* op) { return std::string(op) + ": "; }

void InferCtx::need_attrs(size_t n) const {
  if (attrs.size() < n)
    op_fail("E_ATTR", where(op) + "expected at least " + std::to_string(n) + " attributes, got " +
                          std::to_string(attrs.size()));
}

double InferCtx::af(size_t k) const {
  need_attrs(k + 1);
  return attrs[k];
}

int64_t InferCtx::ai(size_t k) const {
  double v = af(k);
  if (!std::isfinite(v) || std::floor(v) != v)
    op_fail("E_ATTR", where(op) + "attribute " + std::to_string(k) + " must be an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

void InferCtx::need_f32(size_t i) const {
  if (in[i].dtype != DType::f32)
    op_fail("E_DTYPE", where(op) + "input " + std::to_string(i) + " must be float32, got " + dtype_name(in[i].dtype));
}

void InferCtx::need_rank(size_t i, size_t rank) const {
  if (in[i].shape.size() != rank)
    op_fail("E_SHAPE", where(op) + "input " + std::to_string(i) + " must have rank " + std::to_string(rank) +
                           ", got shape " + shape_str(in[i].shape));
}

void InferCtx::need_min_rank(size_t i, size_t rank) const {
  if (in[i].shape.size() < rank)
    op_fail("E_SHAPE", where(op) + "input " + std::to_string(i) + " must have rank >= " + std::to_string(rank) +
                           ", got shape " + shape_str(in[i].shape));
}

void InferCtx::need_same_shape(size_t i, size_t j) const {
  if (in[i].shape != in[j].shape)
    op_fail("E_SHAPE", where(op) + "inputs " + std::to_string(i) + " and " + std::to_string(j) +
                           " must have the same shape, got " + shape_str(in[i].shape) + " and " +
                           shape_str(in[j].shape));
}

void InferCtx::need_shape(size_t i, const Shape& want, const char* what) const {
  if (in[i].shape != want)
    op_fail("E_SHAPE", where(op) + what + " must have shape " + shape_str(want) + ", got " + shape_str(in[i].shape));
}

void InferCtx::need_dim(size_t i, int64_t axis, int64_t value, const char* what) const {
  const Shape& s = in[i].shape;
  int64_t a = axis < 0 ? axis + static_cast<int64_t>(s.size()) : axis;
  if (a < 0 || a >= static_cast<int64_t>(s.size()) || s[a] != value)
    op_fail("E_SHAPE", where(op) + what + ": expected input " + std::to_string(i) + " dim " + std::to_string(axis) +
                           " = " + std::to_string(value) + ", got shape " + shape_str(s));
}

void InferCtx::need_acc(size_t i, size_t xi) const {
  if (i >= in.size()) return;
  need_f32(i);
  if (numel(in[i].shape) != numel(in[xi].shape))
    op_fail("E_SHAPE", where(op) + "acc must have the " + std::to_string(numel(in[xi].shape)) + " elements of x " +
                           shape_str(in[xi].shape) + ", got " + shape_str(in[i].shape));
}

namespace {
std::mutex g_switch_mu;
std::shared_ptr<const SwitchMap> g_switches;  // set from JS; replaced, never changed in place
std::atomic<bool> g_any_switch{false};        // g_switches non-null: the reads without a lock while none is set
thread_local std::shared_ptr<const SwitchMap> t_scope;
thread_local bool t_scoped = false;

// The environment's value of a switch, else the one set from JS (the enqueue-time values inside a SwitchScope).
bool switch_value(const char* name, std::string* out) {
  if (const char* e = std::getenv(name)) {
    *out = e;
    return true;
  }
  const std::shared_ptr<const SwitchMap> m = t_scoped ? t_scope : switch_snapshot();
  if (!m) return false;
  auto it = m->find(name);
  if (it == m->end()) return false;
  *out = it->second;
  return true;
}
}  // namespace

void set_switch(const std::string& name, const char* value) {
  std::lock_guard<std::mutex> lock(g_switch_mu);
  auto m = g_switches ? std::make_shared<SwitchMap>(*g_switches) : std::make_shared<SwitchMap>();
  if (value) (*m)[name] = value;
  else m->erase(name);
  g_switches = m->empty() ? nullptr : std::shared_ptr<const SwitchMap>(std::move(m));
  g_any_switch.store(g_switches != nullptr, std::memory_order_release);
}

std::shared_ptr<const SwitchMap> switch_snapshot() {
  if (!g_any_switch.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(g_switch_mu);
  return g_switches;
}

SwitchScope::SwitchScope(std::shared_ptr<const SwitchMap> snap) : prev_(std::move(t_scope)), prev_on_(t_scoped) {
  t_scope = std::move(snap);
  t_scoped = true;
}

SwitchScope::~SwitchScope() {
  t_scope = std::move(prev_);
  t_scoped = prev_on_;
}

bool emulation_requested(const char* base) {
  std::string e;
  if (!switch_value("IRCONSTYLE_EMULATE", &e)) return false;
  return ("," + e + ",").find("," + std::string(base) + ",") != std::string::npos;
}

bool env_is(const char* name, const char* value) {
  std::string e;
  return switch_value(name, &e) && e == value;
}

}  // namespace irc
