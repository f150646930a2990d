/* A use after free, a double free and a leak: under ASan (built with
 * -fsanitize-recover=address) the program goes on after each error, and
 * its leak check at exit still runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *a = malloc(32);
    strcpy(a, "freed too early");
    free(a);
    printf("%c\n", a[0]);
    char *b = malloc(16);
    free(b);
    free(b);
    char *lost = malloc(24);
    memset(lost, 1, 24);
    lost = NULL;
    return 0;
}
