// error: `count` must be a number, found `many`
int *p = malloc(4); //~ LEAK definite size=4 count=many
