// A leak in a function that also prints: stdout's buffer (allocated by the
// first printf) is the C runtime's and must not be reported; the string is
// lost when the function returns and must be, definite, at its line.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void greet(const char *who)
{
    char *msg = malloc(strlen(who) + 8);
    sprintf(msg, "hello, %s", who);
    printf("%s\n", msg);
}

int main(void)
{
    greet("world");
    return 0;
}
