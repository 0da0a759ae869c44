/* LD_PRELOAD shim for bench/peer_janus.py: Janus sees 127.0.0.1 as its only interface.
 *
 * Janus gathers ICE candidates on the interfaces getifaddrs() lists, skipping loopback ones
 * (IFF_LOOPBACK, src/ice.c, janus_ice_setup_local) and every interface that is not up. The
 * bench is loopback only, so this wrapper marks every entry down except 127.0.0.1, and takes
 * the loopback flag off that one: Janus then binds and offers 127.0.0.1 only. The list itself
 * is not changed (freeifaddrs() frees it as one block). Built by the bench into its work dir.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **ifap) {
    static int (*real)(struct ifaddrs **);
    if (real == NULL)
        real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
    int result = real(ifap);
    if (result != 0)
        return result;
    for (struct ifaddrs *ifa = *ifap; ifa != NULL; ifa = ifa->ifa_next) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ifa->ifa_addr;
        if (in != NULL && in->sin_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            ifa->ifa_flags &= ~IFF_LOOPBACK;
        else
            ifa->ifa_flags &= ~(IFF_UP | IFF_RUNNING);
    }
    return 0;
}
