# The KVM probe guest: a 64 KiB firmware image. From the reset vector it enters protected
# mode, enables paging and long mode, then writes 0x2a to the isa-debug-exit port (QEMU exits
# with status 85). A host whose KVM cannot run a 64-bit guest never gets there.
# Build: as --64 -o p.o kvm-probe.S && ld -m elf_x86_64 -Ttext=0 --oformat=binary -o p.rom p.o
# The bytes before 0xB0 and the jump at 0xFFF0 are embedded in accel.ts.
.set BASE, 0xF0000
.code16
.text
start:
    cli
    lgdtl %cs:gdt_desc
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    .byte 0x66, 0xea
    .long BASE + pm32
    .word 0x08
.code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x1000, %edi
    xorl %eax, %eax
    movl $0xC00, %ecx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x0083, 0x3000
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0x1000, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmp $0x18, $(BASE + lm64)
.code64
lm64:
    movb $0x2a, %al
    outb %al, $0xf4
    hlt
.align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long BASE + gdt
.org 0xFFF0
.code16
    jmp start
.org 0x10000, 0xf4
