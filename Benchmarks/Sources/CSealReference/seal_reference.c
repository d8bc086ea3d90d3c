#include <openssl/evp.h>
#include <string.h>
#include "seal_reference.h"

size_t ref_seal_loop(uint8_t *buf, size_t len, size_t count) {
    static EVP_CIPHER_CTX *ctx;
    if (!ctx) { ctx = EVP_CIPHER_CTX_new(); EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, 1); }
    uint8_t key[32] = {7}, nonce[12] = {0};
    size_t done = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t c = i;
        memcpy(nonce + 4, &c, 8);
        int outl = 0;
        if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, 1) != 1) break;
        if (EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) != 1) break;
        if (EVP_CipherFinal_ex(ctx, buf + outl, &outl) != 1) break;
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, buf + len) != 1) break;
        done++;
    }
    return done;
}
