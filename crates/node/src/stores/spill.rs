//! [`CarSpill`]: the blocks of a DAG being imported, kept as CAR sections in an unnamed
//! temporary file until the walk is done. The importer hands out blocks children first and the
//! root last, but a CAR's header names its roots before any block (car-v1.md § "Header"), so
//! the sections wait on disk (not in memory) until the roots are known; then the header and the
//! file are read once, as one CARv1, by the ingest pipeline. The file has no name: it is gone
//! when the last handle closes, even if the process dies.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use cid::Cid;
use hydrant_unixfs::importer::Block;

/// CAR sections spilled to an unnamed temporary file (see the module docs).
pub struct CarSpill {
    file: BufWriter<File>,
    blocks: u64,
    section: Vec<u8>,
}

impl CarSpill {
    /// An empty spill file in `dir` (the repository, so that it is on the same disk as the
    /// data and never in a memory-backed `/tmp`).
    ///
    /// # Errors
    /// The I/O error of creating the file, with `dir` named.
    pub fn create_in(dir: &Path) -> std::io::Result<Self> {
        let file = tempfile::tempfile_in(dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("creating a temporary file in {}: {e}", dir.display()),
            )
        })?;
        Ok(Self {
            file: BufWriter::with_capacity(1 << 20, file),
            blocks: 0,
            section: Vec::new(),
        })
    }

    /// Appends `blocks` as CAR sections (varint length, CID, data).
    ///
    /// # Errors
    /// The I/O error of writing the file.
    pub fn write(&mut self, blocks: impl IntoIterator<Item = Block>) -> std::io::Result<()> {
        for block in blocks {
            self.section.clear();
            hydrant_car::encode_section(&block.cid, &block.data, &mut self.section);
            self.file.write_all(&self.section)?;
            self.blocks += 1;
        }
        Ok(())
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The CARv1 naming `roots`: its header, then the sections written, read from the start of
    /// the file.
    ///
    /// # Errors
    /// The I/O error of flushing or rewinding the file.
    pub fn into_car(
        self,
        roots: &[Cid],
    ) -> std::io::Result<impl tokio::io::AsyncRead + Unpin + Send + 'static> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let header = std::io::Cursor::new(hydrant_car::encode_v1_header(roots));
        Ok(tokio::io::AsyncReadExt::chain(
            header,
            tokio::fs::File::from_std(file),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn spilled_sections_read_back_as_one_car() {
        let dir = tempfile::tempdir().unwrap();
        let profile = hydrant_unixfs::importer::ImportProfile::default();
        let mut file =
            hydrant_unixfs::importer::FileImporter::new(&profile, Default::default()).unwrap();
        let data = vec![7u8; 3 * profile.chunk_size + 5];
        let mut spill = CarSpill::create_in(dir.path()).unwrap();
        spill.write(file.push(&data)).unwrap();
        let imported = file.finish();
        let root = imported.cid;
        spill.write(imported.blocks).unwrap();
        assert_eq!(spill.blocks(), 5, "four leaves and the root");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the spill file has no name"
        );

        let mut car = Vec::new();
        spill
            .into_car(&[root])
            .unwrap()
            .read_to_end(&mut car)
            .await
            .unwrap();
        let mut decoder = hydrant_car::CarDecoder::new(Default::default());
        decoder.push(&car);
        let mut sections = 0;
        while let Some(event) = decoder.next_event().unwrap() {
            match event {
                hydrant_car::Event::Header(header) => assert_eq!(header.roots, [root]),
                hydrant_car::Event::Section(section) => {
                    hydrant_blocks::verify_block(&section.cid, &section.data).unwrap();
                    sections += 1;
                }
            }
        }
        decoder.finish().unwrap();
        assert_eq!(sections, 5, "every section is read back");
    }
}
