// error: expected a space after
int *p = malloc(4); //~LEAK definite size=4
