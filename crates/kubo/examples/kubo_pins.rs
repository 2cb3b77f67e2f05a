//! Prints the pins and the block count of a Kubo repository: `cargo run -p hydrant-kubo
//! --example kubo_pins -- PATH`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: kubo_pins PATH");
    let repo = hydrant_kubo::KuboRepo::open(std::path::Path::new(&path)).expect("open");
    println!("repo version {}, shard {:?}", repo.version, repo.shard);
    for pin in repo.pins(&std::env::temp_dir()).expect("pins") {
        println!("{pin:?}");
    }
    let files = hydrant_kubo::flatfs::block_files(repo.blocks_dir()).expect("blocks");
    println!("{} block files", files.count());
}
