// victim.cpp: lab 03's test program. Its leaks are annotated; the checker
// compiles it with your debug_new.cpp and compares your tracker's report
// with the annotations. Do not edit it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "debug_new.h"

struct Point {
    int x, y, z;
    Point(int a, int b, int c) : x(a), y(b), z(c) {}
};

struct Node {
    Node *next;
    long payload[3];
};

// A class with a destructor: `new Gauge[n]` stores n in front of the array.
struct Gauge {
    double reading = 0;
    ~Gauge() { reading = -1; }
};

static Node *chain(int n)
{
    Node *head = nullptr;
    for (int i = 0; i < n; i++) {
        Node *node = new Node();  //~ LEAK definite size=32
        //~^ LEAK indirect size=32 count=3
        node->next = head;
        head = node;
    }
    return head;
}

int main()
{
    Point *kept = new Point(1, 2, 3);
    Point *lost = new Point(4, 5, 6);  //~ LEAK definite size=12
    int *numbers = new int[10];  //~ LEAK definite size=40
    Gauge *gauges = new Gauge[3];  //~ LEAK definite size=32
    Gauge *spare = new Gauge[5];
    double *scratch = new double[16];

    std::vector<std::string> names;  // allocates through the plain operator new
    for (int i = 0; i < 20; i++)
        names.push_back("a name long enough to leave the small-string buffer " + std::to_string(i));

    Node *list = chain(4);
    int length = 0;
    for (Node *n = list; n != nullptr; n = n->next)
        length++;
    // Every pointer operator new returns must be aligned for any type. (Not
    // gauges and spare: a `new Gauge[n]` expression returns the block plus its cookie.)
    int misaligned = 0;
    for (const void *p : {static_cast<const void *>(kept), static_cast<const void *>(lost), static_cast<const void *>(numbers),
                          static_cast<const void *>(scratch), static_cast<const void *>(list)})
        if (reinterpret_cast<std::uintptr_t>(p) % alignof(std::max_align_t) != 0)
            misaligned++;
    numbers[0] = 7;
    gauges[0].reading = 1.5;
    std::printf("kept (%d,%d,%d), lost.x %d, numbers[0] %d, gauges[0] %.1f, list of %d, %zu names, %d misaligned\n", kept->x,
                kept->y, kept->z, lost->x, numbers[0], gauges[0].reading, length, names.size(), misaligned);

    delete kept;
    delete[] spare;
    delete[] scratch;
    return 0;
}
