// error: unknown region `heap`
int *p = malloc(4); //~ LEAK definite size=4 region=heap
