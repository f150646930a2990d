// error: `MISS:` needs a backend
int *p = malloc(4); //~ MISS: who misses it?
