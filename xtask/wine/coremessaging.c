/*
 * Test-only coremessaging.dll for wine 8.0, which lacks it.
 *
 * windows-capture imports CreateDispatcherQueueController; without this DLL an
 * .exe linking it cannot even load under wine. This stub reports E_NOTIMPL,
 * so capture start fails with an error the program handles, which is what
 * the tests expect under wine (it has no Windows.Graphics.Capture anyway).
 * Never ship it: real Windows has the real DLL.
 * Built and installed into the test wine prefix by `cargo xtask windows`.
 */
#include <windows.h>

/* DispatcherQueueOptions from dispatcherqueue.h (not in mingw-w64 10). */
typedef struct {
    DWORD dwSize;
    DWORD threadType;
    DWORD apartmentType;
} DispatcherQueueOptions;

HRESULT WINAPI CreateDispatcherQueueController(DispatcherQueueOptions options, void **controller)
{
    (void)options;
    if (controller)
        *controller = NULL;
    return E_NOTIMPL;
}
