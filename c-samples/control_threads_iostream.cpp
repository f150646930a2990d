//@ title: control: threads that print through iostreams and stdio, joined; a thread-local buffer freed
//@ teaches: stdio and iostream buffers, locale data, thread stacks, DTVs and libstdc++'s pool belong to the runtime; nothing here may be reported
//@ cflags: -pthread
#include <pthread.h>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include "leaklab.h"

static thread_local std::string scratch;

static void *worker(void *arg)
{
    long id = reinterpret_cast<long>(arg);
    std::ostringstream out;
    for (int i = 0; i < 50; i++) {
        scratch = "worker " + std::to_string(id) + " round " + std::to_string(i);
        out << scratch.size() << ' ';
    }
    std::printf("worker %ld: %zu chars\n", id, out.str().size());
    return nullptr;
}

// The vector is freed on return, before the checkpoint: nothing of the
// program's own is live when the stopping backends look.
static size_t run_workers()
{
    std::vector<pthread_t> threads(4);
    for (long i = 0; i < 4; i++)
        pthread_create(&threads[i], nullptr, worker, reinterpret_cast<void *>(i));
    for (pthread_t t : threads)
        pthread_join(t, nullptr);
    return threads.size();
}

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    size_t joined = run_workers();
    std::cout << "joined " << joined << " threads" << std::endl;
    std::cerr << "a line on stderr" << std::endl;
    leaklab_checkpoint();
    return 0;
}
