// error: unknown attribute `bytes`
int *p = malloc(4); //~ LEAK definite bytes=4
