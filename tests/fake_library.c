/*
 * fake_library.c - a shared library that stands in for libcrypto or libnats
 * under their sonames and has none of their functions: lazy_libraries_test
 * puts it first on LD_LIBRARY_PATH to see what a process is told when the
 * library it loads on first use is not the one it needs.
 */
int rre_fake_library_marker(void);

int rre_fake_library_marker(void)
{
    return 0;
}
