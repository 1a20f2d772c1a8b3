use super::*;

#[test]
fn rip_relative_leas_and_their_targets() {
    let code = [
        0x90, // nop
        0x48, 0x8d, 0x15, 0x10, 0x00, 0x00, 0x00, // lea rdx, [rip+0x10]
        0x4c, 0x8d, 0x05, 0xf0, 0xff, 0xff, 0xff, // lea r8, [rip-0x10]
        0x48, 0x8d, 0x44, 0x24, 0x08, 0x90, 0x90, // lea rax, [rsp+8]: not rip
    ];
    let leas: Vec<_> = rip_leas(&code, 0x1000).collect();
    assert_eq!(leas, vec![(0x1001, 0x1018), (0x1008, 0xfff)]);
}

#[test]
fn a_direct_call_is_found_with_whether_r8_was_set_before_it() {
    // mov rcx, rsp; call +0 (to 0x100a); ret
    let four_args = [
        0x48, 0x89, 0xe1, 0xe8, 0x02, 0x00, 0x00, 0x00, 0xc3, 0x90, 0xc3,
    ];
    assert_eq!(calls(&four_args, 0x1000, 0x100a), Some(false));
    assert_eq!(calls(&four_args, 0x1000, 0x2000), None);
    // xor ecx, ecx; mov r8, rsp; call +0 (to 0x100b); ret
    let five_args = [
        0x31, 0xc9, 0x49, 0x89, 0xe0, 0xe8, 0x01, 0x00, 0x00, 0x00, 0xc3, 0xc3,
    ];
    assert_eq!(calls(&five_args, 0x1000, 0x100b), Some(true));
    // mov r8, rsp; jmp +0; call: a branch between them forgets r8.
    let branch = [
        0x49, 0x89, 0xe0, 0xeb, 0x00, 0xe8, 0x01, 0x00, 0x00, 0x00, 0xc3, 0xc3,
    ];
    assert_eq!(calls(&branch, 0x1000, 0x100b), Some(false));
}

#[test]
fn functions_are_found_by_their_extents() {
    let frames = Frames(vec![(0x1000, 0x1040), (0x1040, 0x1100), (0x2000, 0x2010)]);
    assert_eq!(frames.function_at(0x1000), Some(0x1000));
    assert_eq!(frames.function_at(0x103f), Some(0x1000));
    assert_eq!(frames.function_at(0x1040), Some(0x1040));
    // Between functions, and before the first.
    assert_eq!(frames.function_at(0x1800), None);
    assert_eq!(frames.function_at(0x10), None);
    assert_eq!(frames.end_of(0x1040), 0x1100);
}

#[test]
fn a_file_without_openssl_is_absent() {
    assert_eq!(locate(b"\x7fELF not really"), Err(LocateError::Absent));
}
