/*
 * lazy_crypto.c: the libcrypto (OpenSSL 3) functions tanuki-svc calls (the
 * MD5 and SCRAM-SHA-256 logins of held postgres sessions), loaded on first
 * use (see lazylib.h for why). Each has OpenSSL's own prototype and
 * forwards to libcrypto; one not loaded fails as OpenSSL fails (0, NULL).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>

#include "common/lazylib.h"

static struct {
  EVP_MD_CTX *(*md_ctx_new)(void);
  void (*md_ctx_free)(EVP_MD_CTX *);
  const EVP_MD *(*md5)(void);
  const EVP_MD *(*sha256)(void);
  int (*digest_init_ex)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
  int (*digest_update)(EVP_MD_CTX *, const void *, size_t);
  int (*digest_final_ex)(EVP_MD_CTX *, unsigned char *, unsigned int *);
  int (*digest)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *);
  int (*encode_block)(unsigned char *, const unsigned char *, int);
  int (*decode_block)(unsigned char *, const unsigned char *, int);
  int (*pbkdf2_hmac)(const char *, int, const unsigned char *, int, int, const EVP_MD *, int,
                     unsigned char *);
  unsigned char *(*hmac)(const EVP_MD *, const void *, int, const unsigned char *, size_t,
                         unsigned char *, unsigned int *);
  int (*rand_bytes)(unsigned char *, int);
} f;

#define SYM(field, name) {#name, (void **)&f.field}
static const tsvc_lazysym_t syms[] = {
    SYM(md_ctx_new, EVP_MD_CTX_new),
    SYM(md_ctx_free, EVP_MD_CTX_free),
    SYM(md5, EVP_md5),
    SYM(sha256, EVP_sha256),
    SYM(digest_init_ex, EVP_DigestInit_ex),
    SYM(digest_update, EVP_DigestUpdate),
    SYM(digest_final_ex, EVP_DigestFinal_ex),
    SYM(digest, EVP_Digest),
    SYM(encode_block, EVP_EncodeBlock),
    SYM(decode_block, EVP_DecodeBlock),
    SYM(pbkdf2_hmac, PKCS5_PBKDF2_HMAC),
    SYM(hmac, HMAC),
    SYM(rand_bytes, RAND_bytes),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool tried, ok;
static char why[300];

static void load(void) {
  ok = tsvc_lazylib_load("libcrypto.so.3", syms, sizeof syms / sizeof syms[0], why, sizeof why);
  __atomic_store_n(&tried, 1, __ATOMIC_RELEASE);
}

static bool have(void) {
  pthread_once(&once, load);
  return ok;
}

bool tsvc_lazy_crypto_loaded(const char **reason) {
  bool t = __atomic_load_n(&tried, __ATOMIC_ACQUIRE);
  if (reason) *reason = t && !ok ? why : "";
  return t && ok;
}

EVP_MD_CTX *EVP_MD_CTX_new(void) { return have() ? f.md_ctx_new() : NULL; }

void EVP_MD_CTX_free(EVP_MD_CTX *c) {
  if (have()) f.md_ctx_free(c);
}

const EVP_MD *EVP_md5(void) { return have() ? f.md5() : NULL; }

const EVP_MD *EVP_sha256(void) { return have() ? f.sha256() : NULL; }

int EVP_DigestInit_ex(EVP_MD_CTX *c, const EVP_MD *t, ENGINE *e) {
  return have() ? f.digest_init_ex(c, t, e) : 0;
}

int EVP_DigestUpdate(EVP_MD_CTX *c, const void *d, size_t n) {
  return have() ? f.digest_update(c, d, n) : 0;
}

int EVP_DigestFinal_ex(EVP_MD_CTX *c, unsigned char *md, unsigned int *s) {
  return have() ? f.digest_final_ex(c, md, s) : 0;
}

int EVP_Digest(const void *d, size_t n, unsigned char *md, unsigned int *s, const EVP_MD *t,
               ENGINE *e) {
  return have() ? f.digest(d, n, md, s, t, e) : 0;
}

int EVP_EncodeBlock(unsigned char *t, const unsigned char *from, int n) {
  if (have()) return f.encode_block(t, from, n);
  if (t) *t = '\0';
  return 0;
}

int EVP_DecodeBlock(unsigned char *t, const unsigned char *from, int n) {
  return have() ? f.decode_block(t, from, n) : -1;
}

int PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                      int iter, const EVP_MD *digest, int keylen, unsigned char *out) {
  return have() ? f.pbkdf2_hmac(pass, passlen, salt, saltlen, iter, digest, keylen, out) : 0;
}

unsigned char *HMAC(const EVP_MD *md, const void *key, int klen, const unsigned char *d,
                    size_t n, unsigned char *out, unsigned int *outlen) {
  return have() ? f.hmac(md, key, klen, d, n, out, outlen) : NULL;
}

int RAND_bytes(unsigned char *buf, int num) { return have() ? f.rand_bytes(buf, num) : 0; }
