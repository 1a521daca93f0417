// CPU thread pool used by parallel_for (op_api.h). The executor thread is worker 0.
#pragma once
namespace irc {
void threadpool_init(int threads);  // call once before the first kernel; threads <= 0 means hardware count
void threadpool_shutdown();
}
