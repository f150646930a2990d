// error: LEAK needs `size=N`
int *p = malloc(4); //~ LEAK definite count=2
