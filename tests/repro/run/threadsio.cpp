// A leak-free program that prints with stdio and iostreams from several
// threads, throws and catches (libstdc++'s emergency pool), and leaves two
// threads blocked when main returns: nothing here is a leak.
#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::mutex m;

static void worker(int i)
{
    std::ostringstream out;
    out << "worker " << i;
    std::string s = out.str();
    std::lock_guard<std::mutex> g(m);
    std::cout << s << std::endl;
    std::printf("printf from %d\n", i);
}

static void sleeper()
{
    std::string name = "sleeper"; // its stack holds a block while it waits in libc
    name += " thread";
    for (;;)
        pause();
}

int main()
{
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; i++)
        ts.emplace_back(worker, i);
    for (auto &t : ts)
        t.join();
    try {
        throw std::runtime_error("caught");
    } catch (const std::exception &e) {
        std::cerr << e.what() << std::endl;
    }
    std::thread(sleeper).detach();
    std::thread(sleeper).detach();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::cout << "done" << std::endl;
    return 0;
}
