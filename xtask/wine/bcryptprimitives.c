/*
 * bcryptprimitives.dll for wine 8.0, which lacks it.
 *
 * Rust's standard library (1.78+) takes its random numbers from
 * bcryptprimitives.dll!ProcessPrng; without this DLL a Rust .exe dies at load
 * time under wine with no output at all. ProcessPrng is forwarded to
 * advapi32!SystemFunction036 (RtlGenRandom), which wine implements.
 * Built and installed into the test wine prefix by `cargo xtask windows`.
 */
#include <windows.h>

/* RtlGenRandom's real name; ntsecapi.h only declares it under a macro. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Fills `data` with `len` random bytes. Like Windows, never fails. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a 32-bit length: feed it in pieces. */
    while (len > 0) {
        ULONG piece = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, piece))
            FatalAppExitA(0, "ProcessPrng: RtlGenRandom failed");
        data += piece;
        len -= piece;
    }
    return TRUE;
}
