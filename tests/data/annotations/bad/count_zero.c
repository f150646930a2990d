// error: `count=0` is no leak
int *p = malloc(4); //~ LEAK definite size=4 count=0
