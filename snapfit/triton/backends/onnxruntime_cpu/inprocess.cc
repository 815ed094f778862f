// The `onnxruntime_cpu` backend inside Triton's own process.
//
// Triton's Python backend runs a model's Python in a separate stub process: every request's tensors are copied
// into the stub's shared memory, the request is handed over and waited for, and the outputs are copied back out.
// On the SAM decoder (a 4 MB embedding in, 1 MB of mask logits out, ~17 ms of ONNX Runtime on a 2-core CPU) that
// was ~2 ms per call (docs/serving.md). This backend embeds the Python interpreter of snapfit's venv in the server
// instead and calls snapfit/triton/inprocess_bridge.py directly from the instance's thread: inputs become numpy
// views of Triton's buffers (a client's shared-memory region included) and outputs are copied once, into the
// buffers Triton allocates (a client's region again). ONNX Runtime releases the GIL while it runs, so instances
// of different models still run side by side.
//
// snapfit/triton/launcher.py builds it (g++, the venv's Python headers and libpython) into
// <backend dir>/onnxruntime_cpu/libtriton_onnxruntime_cpu.so, which Triton prefers to the model.py beside it.
// The process needs SNAPFIT_PYTHON: the venv's python executable, from which the interpreter finds the venv.
//
// The Triton C API is declared below, only what this file uses; the declarations follow the documented API
// (tritonserver.h / tritonbackend.h, API version 1.x): opaque handles, enums passed as int.

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
struct TRITONSERVER_Error;
struct TRITONSERVER_Message;
struct TRITONBACKEND_Backend;
struct TRITONBACKEND_Model;
struct TRITONBACKEND_ModelInstance;
struct TRITONBACKEND_Request;
struct TRITONBACKEND_Response;
struct TRITONBACKEND_Input;
struct TRITONBACKEND_Output;

using TritonError = TRITONSERVER_Error;
enum : int { kErrorInternal = 1, kErrorInvalidArg = 3, kErrorUnsupported = 5 };  // TRITONSERVER_Error_Code
enum : int { kMemoryCpu = 0, kMemoryCpuPinned = 1, kMemoryGpu = 2 };            // TRITONSERVER_MemoryType
enum : int { kLogInfo = 0, kLogError = 2 };                                    // TRITONSERVER_LogLevel
constexpr uint32_t kResponseFinal = 1;  // TRITONSERVER_RESPONSE_COMPLETE_FINAL
constexpr uint32_t kReleaseAll = 1;     // TRITONSERVER_REQUEST_RELEASE_ALL

TritonError* TRITONSERVER_ErrorNew(int code, const char* message);
void TRITONSERVER_ErrorDelete(TritonError* error);
const char* TRITONSERVER_ErrorMessage(TritonError* error);
TritonError* TRITONSERVER_LogMessage(int level, const char* filename, int line, const char* message);
TritonError* TRITONSERVER_MessageSerializeToJson(TRITONSERVER_Message* message, const char** base, size_t* size);
TritonError* TRITONSERVER_MessageDelete(TRITONSERVER_Message* message);

TritonError* TRITONBACKEND_ModelConfig(TRITONBACKEND_Model* model, uint32_t config_version,
                                       TRITONSERVER_Message** config);
TritonError* TRITONBACKEND_ModelRepository(TRITONBACKEND_Model* model, int* artifact_type, const char** location);
TritonError* TRITONBACKEND_ModelVersion(TRITONBACKEND_Model* model, uint64_t* version);
TritonError* TRITONBACKEND_ModelInstanceModel(TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Model** model);
TritonError* TRITONBACKEND_ModelInstanceState(TRITONBACKEND_ModelInstance* instance, void** state);
TritonError* TRITONBACKEND_ModelInstanceSetState(TRITONBACKEND_ModelInstance* instance, void* state);
TritonError* TRITONBACKEND_ModelInstanceReportStatistics(TRITONBACKEND_ModelInstance* instance,
                                                         TRITONBACKEND_Request* request, bool success,
                                                         uint64_t exec_start_ns, uint64_t compute_start_ns,
                                                         uint64_t compute_end_ns, uint64_t exec_end_ns);
TritonError* TRITONBACKEND_ModelInstanceReportBatchStatistics(TRITONBACKEND_ModelInstance* instance,
                                                              uint64_t batch_size, uint64_t exec_start_ns,
                                                              uint64_t compute_start_ns, uint64_t compute_end_ns,
                                                              uint64_t exec_end_ns);
TritonError* TRITONBACKEND_RequestInputCount(TRITONBACKEND_Request* request, uint32_t* count);
TritonError* TRITONBACKEND_RequestInputName(TRITONBACKEND_Request* request, uint32_t index, const char** name);
TritonError* TRITONBACKEND_RequestInput(TRITONBACKEND_Request* request, const char* name,
                                        TRITONBACKEND_Input** input);
TritonError* TRITONBACKEND_RequestOutputCount(TRITONBACKEND_Request* request, uint32_t* count);
TritonError* TRITONBACKEND_RequestOutputName(TRITONBACKEND_Request* request, uint32_t index, const char** name);
TritonError* TRITONBACKEND_RequestRelease(TRITONBACKEND_Request* request, uint32_t release_flags);
TritonError* TRITONBACKEND_InputProperties(TRITONBACKEND_Input* input, const char** name, int* datatype,
                                           const int64_t** shape, uint32_t* dims_count, uint64_t* byte_size,
                                           uint32_t* buffer_count);
TritonError* TRITONBACKEND_InputBuffer(TRITONBACKEND_Input* input, uint32_t index, const void** buffer,
                                       uint64_t* buffer_byte_size, int* memory_type, int64_t* memory_type_id);
TritonError* TRITONBACKEND_ResponseNew(TRITONBACKEND_Response** response, TRITONBACKEND_Request* request);
TritonError* TRITONBACKEND_ResponseOutput(TRITONBACKEND_Response* response, TRITONBACKEND_Output** output,
                                          const char* name, int datatype, const int64_t* shape, uint32_t dims_count);
TritonError* TRITONBACKEND_ResponseSend(TRITONBACKEND_Response* response, uint32_t send_flags, TritonError* error);
TritonError* TRITONBACKEND_OutputBuffer(TRITONBACKEND_Output* output, void** buffer, uint64_t buffer_byte_size,
                                        int* memory_type, int64_t* memory_type_id);
}

namespace {

const char* kBridgeModule = "snapfit.triton.inprocess_bridge";
PyObject* bridge = nullptr;  // the imported bridge module; set once, never released
std::string python_error;    // why the interpreter could not start, if it could not
std::once_flag python_once;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of Triton's own timestamps (steady_clock)
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void log(int level, const std::string& message) {
  TritonError* error = TRITONSERVER_LogMessage(level, __FILE__, __LINE__, message.c_str());
  if (error != nullptr) TRITONSERVER_ErrorDelete(error);
}

// The pending Python exception as text (clears it). Call with the GIL held.
std::string fetch_python_error() {
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string text = "unknown Python error";
  if (value != nullptr) {
    PyObject* name = type != nullptr ? PyObject_GetAttrString(type, "__name__") : nullptr;
    PyObject* message = PyObject_Str(value);
    if (message != nullptr) {
      const char* utf8 = PyUnicode_AsUTF8(message);
      const char* type_name = name != nullptr ? PyUnicode_AsUTF8(name) : nullptr;
      text = std::string(type_name != nullptr ? type_name : "Error") + ": " + (utf8 != nullptr ? utf8 : "");
    }
    Py_XDECREF(message);
    Py_XDECREF(name);
  }
  PyErr_Clear();
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return text;
}

// Starts the venv's interpreter in this process and imports the bridge; leaves the GIL released.
void start_python() {
  const char* executable = std::getenv("SNAPFIT_PYTHON");
  if (executable == nullptr || *executable == '\0') {
    python_error = "SNAPFIT_PYTHON is not set (the venv's python, from which the embedded interpreter finds it)";
    return;
  }
  // Extension modules (numpy, onnxruntime) resolve libpython's symbols globally; Triton opened this library, and
  // with it libpython, locally.
  if (dlopen(PYTHON_SONAME, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) == nullptr) {
    python_error = std::string("cannot make ") + PYTHON_SONAME + " global: " + dlerror();
    return;
  }
  // Python must not change the locale of the multithreaded server (setlocale, setenv): UTF-8 mode instead
  PyPreConfig preconfig;
  PyPreConfig_InitPythonConfig(&preconfig);
  preconfig.coerce_c_locale = 0;
  preconfig.configure_locale = 0;
  preconfig.utf8_mode = 1;
  PyStatus prestatus = Py_PreInitialize(&preconfig);
  if (PyStatus_Exception(prestatus)) {
    python_error = std::string("the embedded Python did not start: ") + (prestatus.err_msg ? prestatus.err_msg : "");
    return;
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // signals stay Triton's
  config.parse_argv = 0;
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, executable);
  if (!PyStatus_Exception(status)) status = PyConfig_SetBytesString(&config, &config.executable, executable);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    python_error = std::string("the embedded Python did not start: ") + (status.err_msg ? status.err_msg : "");
    return;
  }
  bridge = PyImport_ImportModule(kBridgeModule);
  if (bridge == nullptr) python_error = std::string("cannot import ") + kBridgeModule + ": " + fetch_python_error();
  PyEval_SaveThread();
}

// RAII for the GIL.
struct Gil {
  PyGILState_STATE state = PyGILState_Ensure();
  ~Gil() { PyGILState_Release(state); }
};

// RAII for an owned Python reference.
struct Ref {
  PyObject* p;
  explicit Ref(PyObject* object = nullptr) : p(object) {}
  ~Ref() { Py_XDECREF(p); }
  Ref(Ref&& other) noexcept : p(other.p) { other.p = nullptr; }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
};

TritonError* internal_error(const std::string& message) {
  return TRITONSERVER_ErrorNew(kErrorInternal, message.c_str());
}

// Sends `response` as the request's final answer, with `error` (nullptr: success), and frees the error: Triton
// copies it, the caller keeps ownership. A failed send is logged; nothing else can be done for that request.
void send_final(TRITONBACKEND_Response* response, TritonError* error) {
  TritonError* sent = TRITONBACKEND_ResponseSend(response, kResponseFinal, error);
  if (sent != nullptr) {
    log(kLogError, std::string("onnxruntime_cpu: sending a response failed: ") + TRITONSERVER_ErrorMessage(sent));
    TRITONSERVER_ErrorDelete(sent);
  }
  if (error != nullptr) TRITONSERVER_ErrorDelete(error);
}

struct Instance {
  PyObject* runner;  // an OnnxRunner
  bool batched;      // max_batch_size > 0: a request's first axis is its batch
};

// One request's inputs as [(name, datatype, shape, memoryview)] and its requested outputs as [name]; "" or why not.
std::string request_arguments(TRITONBACKEND_Request* request, PyObject** arguments, std::vector<Ref>* copies,
                              bool batched, uint64_t* batch_size) {
  uint32_t input_count = 0, output_count = 0;
  TritonError* error = TRITONBACKEND_RequestInputCount(request, &input_count);
  if (error == nullptr) error = TRITONBACKEND_RequestOutputCount(request, &output_count);
  Ref inputs(PyList_New(0)), outputs(PyList_New(0));
  for (uint32_t i = 0; error == nullptr && i < input_count; ++i) {
    const char* name = nullptr;
    TRITONBACKEND_Input* input = nullptr;
    int datatype = 0;
    const int64_t* shape = nullptr;
    uint32_t dims = 0, buffers = 0;
    uint64_t byte_size = 0;
    error = TRITONBACKEND_RequestInputName(request, i, &name);
    if (error == nullptr) error = TRITONBACKEND_RequestInput(request, name, &input);
    if (error == nullptr) {
      error = TRITONBACKEND_InputProperties(input, nullptr, &datatype, &shape, &dims, &byte_size, &buffers);
    }
    if (error != nullptr) break;
    if (i == 0 && batched && dims > 0) *batch_size = static_cast<uint64_t>(shape[0]);
    PyObject* data = nullptr;
    if (buffers == 1) {  // the usual case: a view of Triton's buffer, no copy
      const void* buffer = nullptr;
      uint64_t size = 0;
      int memory = kMemoryCpu;
      int64_t memory_id = 0;
      error = TRITONBACKEND_InputBuffer(input, 0, &buffer, &size, &memory, &memory_id);
      if (error != nullptr) break;
      if (memory == kMemoryGpu) return std::string("input ") + name + " is in GPU memory; this backend runs on the CPU";
      data = PyMemoryView_FromMemory(static_cast<char*>(const_cast<void*>(buffer)), static_cast<Py_ssize_t>(size),
                                     PyBUF_READ);
    } else {  // several pieces (or none, for an empty tensor): one copy into a bytearray
      data = PyByteArray_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(byte_size));
      char* target = data != nullptr ? PyByteArray_AsString(data) : nullptr;
      uint64_t offset = 0;
      for (uint32_t b = 0; target != nullptr && error == nullptr && b < buffers; ++b) {
        const void* buffer = nullptr;
        uint64_t size = 0;
        int memory = kMemoryCpu;
        int64_t memory_id = 0;
        error = TRITONBACKEND_InputBuffer(input, b, &buffer, &size, &memory, &memory_id);
        if (error == nullptr && (memory == kMemoryGpu || offset + size > byte_size)) {
          Py_DECREF(data);
          return std::string("input ") + name + " has a piece in GPU memory or beyond its size";
        }
        if (error == nullptr) std::memcpy(target + offset, buffer, size);
        offset += size;
      }
      if (error != nullptr) {
        Py_XDECREF(data);
        break;
      }
      if (target != nullptr && offset != byte_size) {  // never hand ONNX Runtime an uninitialised tail
        Py_DECREF(data);
        return std::string("input ") + name + "'s pieces hold fewer bytes than its size";
      }
    }
    if (data == nullptr) return "out of memory for input " + std::string(name) + ": " + fetch_python_error();
    copies->emplace_back(data);
    Ref dims_tuple(PyTuple_New(dims));
    for (uint32_t d = 0; d < dims; ++d) PyTuple_SET_ITEM(dims_tuple.p, d, PyLong_FromLongLong(shape[d]));
    Ref entry(Py_BuildValue("(siOO)", name, datatype, dims_tuple.p, data));
    PyList_Append(inputs.p, entry.p);
  }
  for (uint32_t o = 0; error == nullptr && o < output_count; ++o) {
    const char* name = nullptr;
    error = TRITONBACKEND_RequestOutputName(request, o, &name);
    if (error == nullptr) {
      Ref text(PyUnicode_FromString(name));
      PyList_Append(outputs.p, text.p);
    }
  }
  if (error != nullptr) {
    std::string message = TRITONSERVER_ErrorMessage(error);
    TRITONSERVER_ErrorDelete(error);
    return message;
  }
  *arguments = PyTuple_Pack(2, inputs.p, outputs.p);
  return "";
}

// Sends one request's answer from the bridge: (outputs, None) or (None, message). Call with the GIL held.
// Returns whether the request succeeded.
bool send_answer(TRITONBACKEND_Response* response, PyObject* answer) {
  PyObject *outputs = nullptr, *message = nullptr;
  if (!PyArg_ParseTuple(answer, "OO", &outputs, &message) || (message == Py_None && !PyList_Check(outputs))) {
    send_final(response, internal_error("onnxruntime_cpu: malformed answer from the bridge: " + fetch_python_error()));
    return false;
  }
  if (message != Py_None) {
    const char* text = PyUnicode_AsUTF8(message);
    if (text == nullptr) PyErr_Clear();
    send_final(response, TRITONSERVER_ErrorNew(kErrorInvalidArg, text != nullptr ? text : "the request failed"));
    return false;
  }
  TritonError* error = nullptr;
  Py_ssize_t count = PyList_Size(outputs);
  for (Py_ssize_t i = 0; error == nullptr && i < count; ++i) {
    const char* name = nullptr;
    int datatype = 0;
    PyObject *shape = nullptr, *array = nullptr;
    if (!PyArg_ParseTuple(PyList_GetItem(outputs, i), "siOO", &name, &datatype, &shape, &array)) {
      error = internal_error("malformed answer from the bridge: " + fetch_python_error());
      break;
    }
    std::vector<int64_t> dims;
    for (Py_ssize_t d = 0; d < PyTuple_Size(shape); ++d) dims.push_back(PyLong_AsLongLong(PyTuple_GetItem(shape, d)));
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS) != 0) {
      error = internal_error("output " + std::string(name) + " is not a contiguous buffer: " + fetch_python_error());
      break;
    }
    TRITONBACKEND_Output* output = nullptr;
    void* buffer = nullptr;
    int memory = kMemoryCpu;
    int64_t memory_id = 0;
    error = TRITONBACKEND_ResponseOutput(response, &output, name, datatype, dims.data(),
                                         static_cast<uint32_t>(dims.size()));
    if (error == nullptr && view.len > 0) {
      error = TRITONBACKEND_OutputBuffer(output, &buffer, static_cast<uint64_t>(view.len), &memory, &memory_id);
      if (error == nullptr && memory == kMemoryGpu) {
        error = TRITONSERVER_ErrorNew(kErrorUnsupported, "Triton asked for an output in GPU memory");
      }
      if (error == nullptr) std::memcpy(buffer, view.buf, static_cast<size_t>(view.len));
    }
    PyBuffer_Release(&view);
  }
  const bool ok = error == nullptr;
  send_final(response, error);
  return ok;
}

// Ends the views of Triton's input buffers before the requests are released. A view that an input array still
// uses cannot be released (BufferError): that array would read freed memory, so it is logged as the bug it is.
void release_views(std::vector<Ref>* views) {
  for (Ref& view : *views) {
    if (view.p == nullptr || !PyMemoryView_Check(view.p)) continue;  // bytearray copies own their bytes
    Ref released(PyObject_CallMethod(view.p, "release", nullptr));
    if (released.p == nullptr) {
      log(kLogError, "onnxruntime_cpu: an input array outlived its request (" + fetch_python_error() +
                         "); its memory is Triton's and goes back now");
    }
  }
  views->clear();
}

}  // namespace

extern "C" {

TritonError* TRITONBACKEND_Initialize(TRITONBACKEND_Backend*) {
  std::call_once(python_once, start_python);
  if (bridge == nullptr) return internal_error("onnxruntime_cpu (in-process): " + python_error);
  log(kLogInfo, std::string("onnxruntime_cpu: in-process backend, Python ") + Py_GetVersion());
  return nullptr;
}

TritonError* TRITONBACKEND_Finalize(TRITONBACKEND_Backend*) {
  return nullptr;  // the interpreter stays: finalising it under Triton's threads is not safe
}

TritonError* TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance* instance) {
  TRITONBACKEND_Model* model = nullptr;
  TRITONSERVER_Message* config = nullptr;
  const char* config_json = nullptr;
  size_t config_size = 0;
  const char* location = nullptr;
  int artifact_type = 0;
  uint64_t version = 0;
  TritonError* error = TRITONBACKEND_ModelInstanceModel(instance, &model);
  if (error == nullptr) error = TRITONBACKEND_ModelConfig(model, 1, &config);
  if (error == nullptr) error = TRITONSERVER_MessageSerializeToJson(config, &config_json, &config_size);
  if (error == nullptr) error = TRITONBACKEND_ModelRepository(model, &artifact_type, &location);
  if (error == nullptr) error = TRITONBACKEND_ModelVersion(model, &version);
  if (error == nullptr) {
    Gil gil;
    Ref runner(PyObject_CallMethod(bridge, "load", "s#sK", config_json, static_cast<Py_ssize_t>(config_size),
                                   location, static_cast<unsigned long long>(version)));
    if (runner.p == nullptr) {
      error = internal_error(fetch_python_error());
    } else {
      Ref batched(PyObject_GetAttrString(runner.p, "batched"));
      bool is_batched = batched.p != nullptr && PyObject_IsTrue(batched.p) == 1;
      PyErr_Clear();
      error = TRITONBACKEND_ModelInstanceSetState(instance, new Instance{runner.p, is_batched});
      if (error == nullptr) runner.p = nullptr;  // the instance owns it now
    }
  }
  if (config != nullptr) TRITONSERVER_MessageDelete(config);
  return error;
}

TritonError* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  void* state = nullptr;
  TritonError* error = TRITONBACKEND_ModelInstanceState(instance, &state);
  if (error == nullptr && state != nullptr) {
    auto* owned = static_cast<Instance*>(state);
    {
      Gil gil;
      Py_XDECREF(owned->runner);
    }
    delete owned;
  }
  return error;
}

TritonError* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* instance,
                                                TRITONBACKEND_Request** requests, const uint32_t request_count) {
  const uint64_t exec_start = now_ns();
  void* state = nullptr;
  if (TritonError* error = TRITONBACKEND_ModelInstanceState(instance, &state)) return error;
  auto* owned = static_cast<Instance*>(state);
  std::vector<TRITONBACKEND_Response*> responses(request_count, nullptr);
  std::vector<bool> success(request_count, false);
  for (uint32_t r = 0; r < request_count; ++r) {
    if (TritonError* error = TRITONBACKEND_ResponseNew(&responses[r], requests[r])) {
      TRITONSERVER_ErrorDelete(error);  // nothing can be sent for it; it is released below
      responses[r] = nullptr;
    }
  }
  uint64_t compute_start = exec_start, compute_end = exec_start, batch_size = 0;
  {
    Gil gil;
    std::vector<Ref> keep;  // the inputs' views live until the answers are sent
    std::vector<uint32_t> asked;  // the requests handed to the bridge
    Ref batch(PyList_New(0));
    for (uint32_t r = 0; r < request_count; ++r) {
      if (responses[r] == nullptr) continue;
      PyObject* arguments = nullptr;
      uint64_t items = 1;
      std::string problem = request_arguments(requests[r], &arguments, &keep, owned->batched, &items);
      if (!problem.empty()) {
        send_final(responses[r], TRITONSERVER_ErrorNew(kErrorInvalidArg, problem.c_str()));
        responses[r] = nullptr;
        continue;
      }
      Ref owned_arguments(arguments);
      PyList_Append(batch.p, arguments);
      asked.push_back(r);
      batch_size += items;
    }
    compute_start = now_ns();
    Ref answers(asked.empty() ? PyList_New(0) : PyObject_CallMethod(bridge, "run", "OO", owned->runner, batch.p));
    compute_end = now_ns();
    std::string failure = answers.p == nullptr ? fetch_python_error() : "";
    for (size_t i = 0; i < asked.size(); ++i) {
      TRITONBACKEND_Response* response = responses[asked[i]];
      if (answers.p == nullptr || PyList_Size(answers.p) != static_cast<Py_ssize_t>(asked.size())) {
        std::string message = "onnxruntime_cpu: the runner failed: " + (failure.empty() ? "wrong answer count" : failure);
        send_final(response, internal_error(message));
      } else {
        success[asked[i]] = send_answer(response, PyList_GetItem(answers.p, static_cast<Py_ssize_t>(i)));
      }
    }
    release_views(&keep);
  }
  const uint64_t exec_end = now_ns();
  for (uint32_t r = 0; r < request_count; ++r) {
    if (TritonError* error = TRITONBACKEND_ModelInstanceReportStatistics(instance, requests[r], success[r], exec_start,
                                                                         compute_start, compute_end, exec_end)) {
      TRITONSERVER_ErrorDelete(error);
    }
    if (TritonError* error = TRITONBACKEND_RequestRelease(requests[r], kReleaseAll)) {
      log(kLogError, std::string("onnxruntime_cpu: releasing a request failed: ") + TRITONSERVER_ErrorMessage(error));
      TRITONSERVER_ErrorDelete(error);
    }
  }
  if (batch_size > 0) {
    if (TritonError* error = TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, batch_size, exec_start,
                                                                              compute_start, compute_end, exec_end)) {
      TRITONSERVER_ErrorDelete(error);
    }
  }
  return nullptr;
}

}  // extern "C"
