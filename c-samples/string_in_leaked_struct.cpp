//@ title: leaked structs holding std::string members long enough to live on the heap
//@ teaches: a leaked object drags its members' heap buffers along: the object is definitely lost, the strings' buffers indirectly lost
#include <cstdio>
#include <string>
#include "leaklab.h"

struct Record {
    std::string name;  // 32 bytes inline; the text goes to the heap past 15 chars
    std::string email;
    int age;
}; // 72 bytes

static void add_record(const char *name, const char *email, int age)
{
    Record *r = new Record; //~ LEAK definite size=72 count=2
    // (bcc's walk skips the frame that called new; leaklab finds it in the code: harness/backends/bcc/recover.rs)
    r->name = name;   //~ LEAK indirect size=34 count=2
    //~^[debug-new] MISS: std::string allocates its buffer inside libstdc++ through the plain operator new, which carries no __FILE__/__LINE__
    //~^^[bcc] MISS: the string's buffer is allocated inside libstdc++ (basic_string::_M_create), built without frame pointers: the walk never gets back to this line
    r->email = email; //~ LEAK indirect size=41 count=2
    //~^[debug-new] MISS: std::string allocates its buffer inside libstdc++ through the plain operator new, which carries no __FILE__/__LINE__
    //~^^[bcc] MISS: the string's buffer is allocated inside libstdc++ (basic_string::_M_create), built without frame pointers: the walk never gets back to this line
    r->age = age; //~^^^^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
    std::printf("added %s <%s>, %d\n", r->name.c_str(), r->email.c_str(), r->age); //~^^^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
} //~^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
//~^^^^^^^^^^^[mtrace] FALSE: the blocks operator new allocated are reported with no site: their one logged caller is in libstdc++
int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{ //~^^^^^^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (160 bytes in 2 blocks here), not at the size asked for
    // Names of 33 chars, addresses of 40: each buffer is length + 1 bytes. //~^^^^^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (96 bytes in 2 blocks here), not at the size asked for
    // (Shorter text would show libstdc++'s growth rule: assigning 16-30 //~^^^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (96 bytes in 2 blocks here), not at the size asked for
    // chars to an empty string allocates 2 * 15 + 1 = 31 bytes.)
    add_record("Alexandra Konstantinopoulou-Smyth", "alexandra.ks@example-university.edu.test", 41);
    add_record("Bartholomew Featherstonehaugh III", "bartholomew.f@example-university.ed.test", 37);
    leaklab_checkpoint();
    return 0;
}
