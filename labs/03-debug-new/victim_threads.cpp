// victim_threads.cpp: eight threads allocate and free at once; each leaks one
// block. A tracker whose list is not protected by a lock corrupts it here.
// Do not edit it.
#include <cstdio>
#include <thread>
#include <vector>

#include "debug_new.h"

static void worker(int id)
{
    for (int i = 0; i < 200000; i++) {
        long *pair = new long[2];
        pair[0] = id;
        pair[1] = i;
        delete[] pair;
    }
    long *kept = new long[3];  //~ LEAK definite size=24 count=8
    kept[0] = id;
}

int main()
{
    std::vector<std::thread> threads;
    for (int id = 0; id < 8; id++)
        threads.emplace_back(worker, id);
    for (auto &t : threads)
        t.join();
    std::printf("8 workers done\n");
    return 0;
}
