// error: unterminated quoted value
int *p = malloc(4); //~ LEAK definite size=4 content="abc
