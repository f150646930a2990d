// error: BADFREE takes only its kind
free(p); //~ BADFREE double size=4
