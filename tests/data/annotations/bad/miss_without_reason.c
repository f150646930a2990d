// error: `MISS:` needs a reason
int *p = malloc(4); //~[valgrind] MISS:
