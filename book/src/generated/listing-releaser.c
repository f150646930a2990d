#include <stdio.h>
#include <stdlib.h>

char *shared_buffer; // the same tentative definition again: merged with filler.c's

void release_buffer(void)
{
    printf("releaser.c sees: %s\n", shared_buffer ? shared_buffer : "(null: not the same variable)");
    free(shared_buffer);
    shared_buffer = NULL;
}
