// error: unknown backend `valgrnd`
int *p = malloc(4); //~[valgrnd] MISS: typo
