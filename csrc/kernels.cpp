// placeholder, replaced by the kernels implementation
int xfr_placeholder() { return 0; }
