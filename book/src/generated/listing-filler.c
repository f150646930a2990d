#include <stdio.h>
#include <stdlib.h>

char *shared_buffer; // a tentative definition: COMMON under -fcommon

void fill_buffer(void)
{
    shared_buffer = malloc(64); //~ NOLEAK (released through the other file's shared_buffer, the same merged symbol)
    snprintf(shared_buffer, 64, "filled by filler.c");
}
