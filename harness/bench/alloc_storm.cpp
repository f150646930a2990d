// alloc_storm: the allocation-heavy program `leaklab bench` times natively and
// under each backend. Several threads each keep a window of live blocks and
// replace a random one per step, alternating malloc/free, new[]/delete[] and
// new/delete of mixed sizes (16..4096 bytes), touching every block as a real
// program would. It frees everything before exiting: a correct detector
// reports nothing.
//
// usage: alloc_storm [THREADS [STEPS_PER_THREAD]]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>

namespace {

constexpr int kWindow = 1024;

struct Node {
    uint64_t key;
    Node *next;
    char payload[48];
};

struct Slot {
    void *p;
    int how; // 0 malloc, 1 new[], 2 new Node
};

struct Work {
    long steps;
    unsigned seed;
    uint64_t checksum;
};

uint32_t next_random(uint32_t &s)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

// Allocation goes through two small functions, as in a real program, so
// that every stack has a few frames to walk.
__attribute__((noinline)) void *make(int how, size_t size)
{
    switch (how) {
    case 0: return std::malloc(size);
    case 1: return new char[size];
    default: return new Node{size, nullptr, {}};
    }
}

__attribute__((noinline)) void unmake(Slot &s)
{
    switch (s.how) {
    case 0: std::free(s.p); break;
    case 1: delete[] static_cast<char *>(s.p); break;
    default: delete static_cast<Node *>(s.p); break;
    }
    s.p = nullptr;
}

__attribute__((noinline)) uint64_t fill(void *p, size_t size, uint32_t r)
{
    auto *bytes = static_cast<unsigned char *>(p);
    std::memset(bytes, static_cast<int>(r), size < 64 ? size : 64);
    bytes[size - 1] = static_cast<unsigned char>(r >> 8);
    return bytes[0] + bytes[size - 1];
}

void *worker(void *arg)
{
    auto *w = static_cast<Work *>(arg);
    Slot window[kWindow] = {};
    uint32_t r = w->seed | 1;
    for (long i = 0; i < w->steps; i++) {
        Slot &s = window[next_random(r) % kWindow];
        if (s.p)
            unmake(s);
        uint32_t x = next_random(r);
        s.how = static_cast<int>(x % 3);
        size_t size = s.how == 2 ? sizeof(Node) : 16 + (x >> 8) % (4096 - 16 + 1);
        s.p = make(s.how, size);
        w->checksum += fill(s.p, size, x);
    }
    for (auto &s : window)
        if (s.p)
            unmake(s);
    return nullptr;
}

} // namespace

int main(int argc, char **argv)
{
    int threads = argc > 1 ? std::atoi(argv[1]) : 4;
    long steps = argc > 2 ? std::atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 256 || steps < 1) {
        std::fprintf(stderr, "usage: alloc_storm [THREADS 1..256 [STEPS >= 1]]\n");
        return 2;
    }
    pthread_t tids[256];
    Work work[256];
    for (int t = 0; t < threads; t++) {
        work[t] = Work{steps, 0x9e3779b9u * static_cast<unsigned>(t + 1), 0};
        if (pthread_create(&tids[t], nullptr, worker, &work[t]) != 0) {
            std::perror("pthread_create");
            return 1;
        }
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], nullptr);
        sum += work[t].checksum;
    }
    std::printf("%d threads x %ld steps, checksum %llu\n", threads, steps, static_cast<unsigned long long>(sum));
    return 0;
}
