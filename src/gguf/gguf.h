#pragma once
// GGUF reader: opens a GGUF file (versions 2 and 3), validates every field before anyone
// trusts it, and exposes metadata and tensor infos. Tensor data stays memory-mapped (never
// copied); `Tensor::data` points into the mapping and lives as long as the GgufFile.
//
// Validation (all failures are a Status naming the problem and the byte offset):
// magic and version; counts and string lengths against the file size; integer overflow in
// shapes and offsets; every tensor's bytes inside the data region and consistent with its type
// and shape; duplicate keys and tensor names; unknown value and tensor types; alignment a power
// of two. Nothing is allocated by an unchecked size: the header's heap is capped at
// kMaxHeaderHeapBytes, and an allocation that fails anyway is a ResourceExhausted Status.
//
// A GgufFile is immutable after open(): safe to read from any number of threads.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"
#include "gguf/ggml_type.h"

namespace hangar::gguf {

// GGUF metadata value types, with the file's ids.
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view value_type_name(ValueType t);  // "uint8", ..., "array"

struct Value;
struct Array;

// The items of an Array, stored compactly: fixed-size elements packed as in the file (1 to 8
// bytes each), strings as one character buffer plus an end offset each, nested arrays as
// Arrays. A metadata array therefore costs about its size in the file, not sizeof(Value) per
// element (48 bytes per uint8 before). Reading an item builds a Value on the fly, so the
// container reads like a vector of Values: size(), empty(), [i], and range-for over values.
class ArrayItems {
 public:
  class Iterator {
   public:
    using value_type = Value;
    using difference_type = std::ptrdiff_t;
    Iterator(const ArrayItems* items, size_t i) : items_(items), i_(i) {}
    Value operator*() const;
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }

   private:
    const ArrayItems* items_;
    size_t i_;
  };

  // Defined out of line, where Array is complete (the nested arrays' vector needs it).
  ArrayItems();
  explicit ArrayItems(ValueType elem_type);
  ~ArrayItems();
  ArrayItems(const ArrayItems&);
  ArrayItems(ArrayItems&&) noexcept;
  ArrayItems& operator=(const ArrayItems&);
  ArrayItems& operator=(ArrayItems&&) noexcept;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Value operator[](size_t i) const;  // i < size()
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, size_); }

  // Typed access without building a Value: the i-th string (string arrays only) and the i-th
  // nested array (array arrays only).
  std::string_view string_at(size_t i) const;
  const Array& array_at(size_t i) const;

  // Appends one item; false (nothing appended) when its type is not the element type.
  bool push_back(const Value& v);
  // Appends `n` fixed-size elements given as their little-endian bytes (n × the element size).
  void append_packed(const uint8_t* bytes, size_t n);
  void append_string(std::string_view s);
  void append_array(Array a);

  // Items push_back() refused for their type (a writer reports these as an error).
  size_t rejected() const { return rejected_; }

  // Heap bytes the items hold (the buffers' capacities, nested arrays included).
  uint64_t heap_bytes() const;

  friend bool operator==(const ArrayItems& a, const ArrayItems& b);

 private:
  ValueType elem_type_ = ValueType::kUint8;
  size_t size_ = 0;
  size_t rejected_ = 0;
  std::vector<uint8_t> packed_;     // fixed-size types: size_ × element size bytes
  std::string chars_;               // strings: every item's bytes, one after another
  std::vector<uint64_t> ends_;      // strings: end offset of item i in chars_
  std::vector<Array> arrays_;       // nested arrays
};

// A homogeneous array; arrays may nest (elem_type kArray).
struct Array {
  Array() = default;
  Array(ValueType elem_type, const std::vector<Value>& values);  // items of other types: skipped
  ValueType elem_type = ValueType::kUint8;
  ArrayItems items;
};

// The bytes one element of a fixed-size type takes (0 for string and array).
size_t value_type_size(ValueType t);

// One metadata value. The variant's alternative matches `type` exactly.
struct Value {
  ValueType type = ValueType::kUint8;
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               Array, uint64_t, int64_t, double>
      data;

  // Typed views; nullopt/nullptr when the value is not of a fitting type.
  std::optional<int64_t> as_int() const;    // any integer type (uint64 above INT64_MAX: nullopt)
  std::optional<uint64_t> as_uint() const;  // any non-negative integer
  std::optional<double> as_float() const;   // any integer or float type
  std::optional<bool> as_bool() const;      // bool only
  const std::string* as_string() const;     // string only
  const Array* as_array() const;            // array only

  // Constructors for writers and tests.
  static Value u8(uint8_t v);
  static Value i8(int8_t v);
  static Value u16(uint16_t v);
  static Value i16(int16_t v);
  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value str(std::string v);
  static Value array(ValueType elem_type, std::vector<Value> items);
  static Value u64(uint64_t v);
  static Value i64(int64_t v);
  static Value f64(double v);

  friend bool operator==(const Value& a, const Value& b);
};

// Same element type and equal items (floats compare by bits, so NaN equals the same NaN).
bool operator==(const Array& a, const Array& b);

// What the reader allocates for one file's header at most: metadata (keys, strings, arrays),
// tensor names and shapes. The largest real headers (256k-token vocabularies with their merges)
// need tens of MiB; a file that asks for more is refused before it is read, not allocated.
inline constexpr uint64_t kMaxHeaderHeapBytes = 512ull << 20;
// Most metadata keys and tensors a file may declare.
inline constexpr uint64_t kMaxMetadataKeys = 1u << 20;
inline constexpr uint64_t kMaxTensors = 1u << 20;

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> shape;  // ggml order: shape[0] = ne0, the contiguous (row) dimension
  uint64_t offset = 0;         // relative to the start of the data region
  uint64_t bytes = 0;          // size of the data, from type and shape
  const uint8_t* data = nullptr;  // into the mapping; nullptr for GgufFile objects not mapped

  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Opens and validates the file; the tensor data is memory-mapped read-only.
  static StatusOr<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses an in-memory image (for tests and the fuzzer). `bytes` must outlive the result.
  static StatusOr<std::unique_ptr<GgufFile>> parse(const uint8_t* bytes, size_t size,
                                                   std::string name = "<memory>");

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return file_size_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data region

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  const std::string* get_string(std::string_view key) const;
  const Array* get_array(std::string_view key) const;

  // Tensors in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

  // Heap bytes the parsed header holds (metadata keys and values, tensor names and shapes), as
  // counted against kMaxHeaderHeapBytes.
  uint64_t header_heap_bytes() const { return header_heap_bytes_; }

  // The architecture ("general.architecture"), or "" when absent.
  std::string architecture() const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t file_size_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t header_heap_bytes_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  // The mapping (or nullptr for parse()).
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

}  // namespace hangar::gguf
