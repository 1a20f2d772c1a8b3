/* Loads a native add-on at run time, as node loads a `.node` file (Copilot
 * CLI's runtime.node), and runs its `addon_main` with the remaining
 * arguments: agentmon must find the add-on's TLS library after start.
 *
 *   addon_loader ADDON.node ARGS... */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: addon_loader ADDON.node ARGS...\n");
        return 2;
    }
    void *addon = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!addon) {
        fprintf(stderr, "addon_loader: %s\n", dlerror());
        return 1;
    }
    int (*run)(int, char **) = (int (*)(int, char **))dlsym(addon, "addon_main");
    if (!run) {
        fprintf(stderr, "addon_loader: %s\n", dlerror());
        return 1;
    }
    return run(argc - 1, argv + 1);
}
