//@ title: control: std::vector, std::string, std::unique_ptr and std::map, all released by their destructors
//@ teaches: RAII types free their heap memory when they go out of scope; nothing here may be reported
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "leaklab.h"

struct Node {
    std::string label;
    std::vector<int> values;
};

// Everything lives in this function's scope and dies with it.
static size_t work()
{
    std::vector<std::unique_ptr<Node>> nodes;
    std::map<std::string, size_t> index;
    for (int i = 0; i < 10; i++) {
        auto n = std::make_unique<Node>();
        n->label = "node number " + std::to_string(i) + " with a long label";
        n->values.assign(100, i);
        index[n->label] = nodes.size();
        nodes.push_back(std::move(n));
    }
    auto shared = std::make_shared<std::string>(64, 'x');
    std::shared_ptr<std::string> copy = shared;
    return index.size() + copy->size();
}

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    std::printf("%zu\n", work());
    leaklab_checkpoint();
    return 0;
}
