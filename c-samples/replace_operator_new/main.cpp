//@ title: a program that replaces the global operator new and delete to count its allocations, and leaks one object
//@ teaches: operator new is a replaceable function: the program's own strong definition wins over libstdc++'s, so every new-expression goes through it; leak trackers build on the same rule (`leaklab symbols replace_operator_new`)
//@ backends: hook, valgrind, bcc, ptrace, lsan, watch
#include <cstdio>
#include "counting_new.h"
#include "leaklab.h"

struct Widget {
    int id;
    char name[20];
}; // 24 bytes

int main()
{
    Widget *kept = new Widget{1, "kept"};
    Widget *dropped = new Widget{2, "dropped"};
    int *numbers = new int[8]();
    std::printf("%s and %s; %zu operator new calls, %zu deletes so far\n", kept->name, dropped->name, counting_new_calls(), counting_delete_calls());
    delete kept;
    delete[] numbers;
    dropped = nullptr; // lost: its block came from counting_new.cpp's malloc
    std::printf("%zu operator new calls, %zu deletes\n", counting_new_calls(), counting_delete_calls());
    leaklab_checkpoint();
    return 0;
}
