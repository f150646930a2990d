// error: BADFREE needs a kind
free(p); //~ BADFREE
