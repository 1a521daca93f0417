// The CUDA emulator's runtime, shared between its files (emu.cpp: streams, graphs, events, kernels; emu_memory.cpp:
// device and pinned memory). Internal to native/emu.
#pragma once
#include <cuda_runtime.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace irc_emu {

using Task = std::function<void()>;

// ---- graphs ------------------------------------------------------------------------------------------------------
struct Graph {
  std::vector<Task> tasks;
  std::vector<void*> owned;  // allocations made while it was captured: live as long as the graph
  // While it is captured: those of its allocations not yet freed in it, with their sizes, and their bytes now and at
  // most. The most is the device memory the graph holds, as CUDA's planner lets allocations whose lifetimes in the
  // graph do not overlap share memory.
  std::unordered_map<void*, size_t> open;
  size_t live = 0, peak = 0;
  bool invalid = false;  // a call that cannot be captured was made: cudaStreamEndCapture fails
};

// ---- streams -----------------------------------------------------------------------------------------------------
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> q;
  bool busy = false;
  bool stop = false;
  Graph* capture = nullptr;  // open capture: work is recorded, not run
  std::thread th;

  Stream() : th([this] { loop(); }) {}
  ~Stream() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    th.join();
  }
  void loop() {
    for (;;) {
      Task t;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [this] { return stop || !q.empty(); });
        if (q.empty()) return;
        t = std::move(q.front());
        q.pop_front();
        busy = true;
      }
      t();
      {
        std::lock_guard<std::mutex> lk(mu);
        busy = false;
      }
      cv.notify_all();
    }
  }
  void push(Task t) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (capture) {
        capture->tasks.push_back(std::move(t));
        return;
      }
      q.push_back(std::move(t));
    }
    cv.notify_all();
  }
  void drain() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [this] { return q.empty() && !busy; });
  }
  Graph* open_capture() {  // the graph being recorded, or nullptr
    std::lock_guard<std::mutex> lk(mu);
    return capture;
  }
};

// emu.cpp
cudaError_t fail(cudaError_t e);  // records e as the calling thread's last error; returns it
Stream* default_stream();
Stream* S(cudaStream_t s);        // the stream, or the default stream for nullptr
void drain_all();                 // waits until every stream has run its work
cudaError_t refuse_in_capture();  // a call a capture refuses: fails it (cudaSuccess when this thread captures none)

// emu_memory.cpp
void* device_alloc(size_t bytes, Graph* g = nullptr);  // nullptr when the card is full; g: allocated in its capture
void device_free(void* p);                             // a block device_alloc made outside a capture
void release_graph_memory(Graph& g);                   // its allocations, at its destruction

}  // namespace irc_emu
