use super::*;

/// A `.gopclntab` with the given functions (name, entry offset), the last
/// one ending at `end`, laid out as Go 1.18+ writes it.
fn table(magic: u32, text_start: u64, funcs: &[(&str, u32)], end: u32) -> Vec<u8> {
    let header = 8 + 8 * 8;
    let mut names = Vec::new();
    let mut name_offs = Vec::new();
    for (name, _) in funcs {
        name_offs.push(names.len() as i32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let names_at = header;
    let pcln_at = names_at + names.len();
    // functab (n + 1 entries), then one _func per function.
    let functab_len = 8 * (funcs.len() + 1);
    let mut pcln = Vec::new();
    for (i, (_, entry)) in funcs.iter().enumerate() {
        pcln.extend_from_slice(&entry.to_le_bytes());
        pcln.extend_from_slice(&((functab_len + 8 * i) as u32).to_le_bytes());
    }
    pcln.extend_from_slice(&end.to_le_bytes());
    pcln.extend_from_slice(&0u32.to_le_bytes());
    for ((_, entry), name_off) in funcs.iter().zip(&name_offs) {
        pcln.extend_from_slice(&entry.to_le_bytes());
        pcln.extend_from_slice(&name_off.to_le_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&[0, 0, 1, 8]);
    let words = [
        funcs.len() as u64,
        0,
        text_start,
        names_at as u64,
        0,
        0,
        0,
        pcln_at as u64,
    ];
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&names);
    out.extend_from_slice(&pcln);
    out
}

#[test]
fn functions_are_found_by_name_with_their_extent() {
    let t = table(
        0xffff_fff1,
        0x40_1000,
        &[("main.main", 0), (WRITE, 0x100), (READ, 0x180)],
        0x200,
    );
    let funcs = functions(&t, 0x40_1000).unwrap();
    assert_eq!(funcs.find(WRITE), Ok(Some((0x40_1100, 0x40_1180))));
    assert_eq!(funcs.find(READ), Ok(Some((0x40_1180, 0x40_1200))));
    assert_eq!(funcs.find("crypto/tls.(*Conn).Close"), Ok(None));
}

#[test]
fn a_zero_text_start_means_the_start_of_text() {
    let t = table(0xffff_fff0, 0, &[(WRITE, 0x10)], 0x20);
    let funcs = functions(&t, 0x1000).unwrap();
    assert_eq!(funcs.find(WRITE), Ok(Some((0x1010, 0x1020))));
}

#[test]
fn older_tables_and_cut_tables_are_refused() {
    // Go 1.16's magic.
    let t = table(0xffff_fffa, 0, &[(WRITE, 0x10)], 0x20);
    assert_eq!(functions(&t, 0).err(), Some(GoError::Version(0xffff_fffa)));
    let t = table(0xffff_fff1, 0, &[(WRITE, 0x10)], 0x20);
    let cut = &t[..t.len() - 6];
    assert_eq!(
        functions(cut, 0).unwrap().find(WRITE),
        Err(GoError::Malformed("function table cut short"))
    );
    assert!(functions(&t[..20], 0).is_err());
}

#[test]
fn every_return_instruction_is_found_and_nothing_else() {
    // sub rsp,0x18; cmp rax,0; jne +1; ret; mov eax,0xc3 (a 0xc3 byte that
    // is no instruction); add rsp,0x18; ret; int3 padding.
    let code = [
        0x48, 0x83, 0xec, 0x18, // sub rsp, 0x18
        0x48, 0x83, 0xf8, 0x00, // cmp rax, 0
        0x75, 0x01, // jne +1
        0xc3, // ret
        0xb8, 0xc3, 0x00, 0x00, 0x00, // mov eax, 0xc3
        0x48, 0x83, 0xc4, 0x18, // add rsp, 0x18
        0xc3, // ret
        0xcc, 0xcc, // padding
    ];
    assert_eq!(return_addresses(&code, 0x1000), vec![0x100a, 0x1014]);
}

#[test]
fn a_file_that_is_not_go_says_so() {
    assert_eq!(locate(b"not an ELF file"), Err(GoError::NotGo));
}

#[test]
fn hostile_tables_are_refused_without_panics() {
    // A function count far past the table, offsets at the end of memory,
    // and a text start that would wrap: errors, never a panic.
    let mut t = table(0xffff_fff1, u64::MAX - 0x10, &[(WRITE, 0x100)], 0x200);
    assert_eq!(
        functions(&t, 0).unwrap().find(WRITE),
        Err(GoError::Malformed("function extent"))
    );
    t[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(functions(&t, 0).map(|f| f.find(READ)).is_ok());
    t[64..72].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert!(functions(&t, 0).unwrap().find(READ).is_err());
    for cut in 0..t.len() {
        if let Ok(f) = functions(&t[..cut], 0) {
            let _ = f.find(READ);
        }
    }
}
