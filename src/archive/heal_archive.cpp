#include "archive/heal_archive.hpp"

#include "archive/archive_file.hpp"

namespace divprune {

namespace {

constexpr const char* kHeal = "heal";


}  // namespace

void write_heal_record(const RunArchive& archive, const HealRecord& r) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = std::string(kHeal) + "/" + r.id;
    f.remove(g);
    f.create_group(g);
    write_annotated_doubles(f, g + "/loss", r.loss, "nats", "mean NLL per target token of the step's batch, before its update");
    write_annotated_doubles(f, g + "/grad_norm", r.grad_norm, "1", "global gradient norm of the step, before clipping");
    write_annotated_doubles(f, g + "/lr", r.lr, "1", "learning rate of the step (warm-up, then cosine)");
    f.write_int64(g + "/tokens", {static_cast<int64_t>(r.tokens.size())}, r.tokens.data());
    annotate(f, g + "/tokens", "tokens", "target tokens of the step's global batch");
    f.set_attr(g, "parent_id", r.parent_id);
    f.set_attr(g, "name", r.name);
    f.set_attr(g, "settings_yaml", r.settings_yaml);
    f.set_attr(g, "text", r.text);
    f.set_attr(g, "text_sha256", r.text_sha256);
    f.set_attr(g, "text_tokens", r.text_tokens);
    f.set_attr(g, "heldout_tokens", r.heldout_tokens);
    f.set_attr(g, "heldout_loss_parent", r.heldout_loss_parent);
    f.set_attr(g, "heldout_loss_healed", r.heldout_loss_healed);
    f.set_attr(g, "seconds", r.seconds);
    f.set_attr(g, "tokens_per_second", r.tokens_per_second);
    f.set_attr(g, "complete", int64_t{1});
  });
}

std::optional<HealRecord> read_heal_record(const RunArchive& archive, const std::string& id) {
  if (!archive.exists()) return std::nullopt;
  const H5File f = open_archive_read(archive);
  const std::string g = std::string(kHeal) + "/" + id;
  if (!group_complete(f, g)) return std::nullopt;
  HealRecord r;
  r.id = id;
  r.loss = f.read_double(g + "/loss");
  r.grad_norm = f.read_double(g + "/grad_norm");
  r.lr = f.read_double(g + "/lr");
  r.tokens = f.read_int64(g + "/tokens");
  r.parent_id = f.attr_string(g, "parent_id");
  r.name = f.attr_string(g, "name");
  r.settings_yaml = f.attr_string(g, "settings_yaml");
  r.text = f.attr_string(g, "text");
  r.text_sha256 = f.attr_string(g, "text_sha256");
  r.text_tokens = f.attr_int(g, "text_tokens");
  r.heldout_tokens = f.attr_int(g, "heldout_tokens");
  r.heldout_loss_parent = f.attr_double(g, "heldout_loss_parent");
  r.heldout_loss_healed = f.attr_double(g, "heldout_loss_healed");
  r.seconds = f.attr_double(g, "seconds");
  r.tokens_per_second = f.attr_double(g, "tokens_per_second");
  return r;
}

std::vector<std::string> heal_record_ids(const RunArchive& archive) {
  std::vector<std::string> ids;
  if (!archive.exists()) return ids;
  const H5File f = open_archive_read(archive);
  if (!f.exists(kHeal)) return ids;
  for (const std::string& id : f.children(kHeal))
    if (group_complete(f, std::string(kHeal) + "/" + id)) ids.push_back(id);
  return ids;
}

}  // namespace divprune
