//@ title: a scoring case: a control that grew
void f(void) {
    free(malloc(32));
}
