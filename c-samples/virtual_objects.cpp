//@ title: leaked objects of polymorphic classes (Shape, Circle, Square)
//@ teaches: a leaked C++ object with virtual methods starts with its vtable pointer, so even a backend without stacks can name its class
#include <cstdio>
#include <vector>
#include "leaklab.h"

struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
};

struct Circle : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.14159265 * r * r; }
}; // vptr + double = 16 bytes

struct Square : Shape {
    double side;
    int id;
    Square(double side, int id) : side(side), id(id) {}
    double area() const override { return side * side; }
}; // vptr + double + int (+ padding) = 24 bytes

static Shape *make_shape(int i)
{
    if (i % 2 == 0)
        return new Circle(i + 1.0); //~ LEAK definite size=16 count=3 type=Circle
    return new Square(i + 1.0, i); //~ LEAK definite size=24 count=2 type=Square
} //~^^[bcc] MISS: libstdc++'s operator new has no frame pointer: the kernel's stack walk skips the frame that called new, and the block lands on its caller's line (line 38)
    //~^^[bcc] MISS: libstdc++'s operator new has no frame pointer: the kernel's stack walk skips the frame that called new, and the block lands on its caller's line (line 38)
// The shapes are summed through base pointers and never deleted; the //~^^^^[dmalloc] MISS: dmalloc knows no C++ type of a block, and the annotation matches by type
// vector holding them is freed when this function returns. //~^^^^[dmalloc] MISS: dmalloc knows no C++ type of a block, and the annotation matches by type
static double total_area(int n) //~^^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
{ //~^^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
    std::vector<Shape *> shapes; //~^^^^^^^^[mtrace] FALSE: the blocks operator new allocated are reported with no site: their one logged caller is in libstdc++
    for (int i = 0; i < n; i++) //~^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (64 bytes in 2 blocks here), not at the size asked for
        shapes.push_back(make_shape(i)); //~[bcc] FALSE: the shapes of lines 28 and 29 land here: operator new has no frame pointer, so the walk skips make_shape()
    double total = 0;
    for (const Shape *s : shapes)
        total += s->area();
    return total;
}

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    // Shapes 0, 2, 4 are circles, 1 and 3 squares.
    printf("total area: %.2f\n", total_area(5));
    leaklab_checkpoint();
    return 0;
}
