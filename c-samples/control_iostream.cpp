//@ title: control: std::cout output and an exception thrown and caught
//@ teaches: libstdc++'s start-up allocations (the exception emergency pool, iostream buffers) are freed at exit under valgrind and must not be reported
#include <iostream>
#include <stdexcept>
#include <string>
#include "leaklab.h"

static int parse(const std::string &s)
{
    if (s.empty() || s[0] < '0' || s[0] > '9')
        throw std::invalid_argument("not a number: " + s);
    return std::stoi(s);
}

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    const char *inputs[] = {"42", "seven", "7"};
    for (const char *in : inputs) {
        try {
            std::cout << in << " -> " << parse(in) << '\n';
        } catch (const std::exception &e) {
            std::cout << "error: " << e.what() << std::endl;
        }
    }
    leaklab_checkpoint();
    return 0;
}
