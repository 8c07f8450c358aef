/*
 * counter-guest: the atca-lab test guest and failover probe (GNU as, AT&T syntax).
 * It counts in RAM and in a register, checks they agree, prints the counter
 * on COM1 and optionally writes it to its disk (reading the previous record
 * back first: the disk must hold what RAM says it wrote) and sends it in
 * UDP datagrams on its NIC (see devices.S and tests/lab/README).
 *
 * Image layout (flat binary linked at 0x7C00, see guest.ld):
 *   sector 0      boot sector (loads sectors 1.. to 0x7E00 with int 13h AH=42h)
 *   sector 1      parameter block (image offset 0x200, guest-physical 0x7E00)
 *   sector 2..    64-bit code + data, then static page tables (4 KiB aligned)
 *
 * Fixed guest-physical addresses:
 *   0x1000  status block (magic "PGSTAT01", RAM counter at 0x1008, ...;
 *           0x1000-0x1100 public, 0x1100-0x1400 private variables)
 *   0x1400  disk record as last written, 0x1600 disk read-back buffer
 *   0x1800  serial line buffer (ring 3), 0x1A00 ethernet frame buffer,
 *   0x1A80  IDE PRD tables, 0x1C00 line buffer (exceptions)
 *   0x2000-0x3000  ring-0 stack (TSS.RSP0),  0x3000-0x7000 ring-3 stack
 *   0x100000-0x120000  disk filler buffer (disk_sectors > 1)
 *
 * Ring 0 only does: load, GDT/IDT/TSS, paging, long mode, mask the PICs,
 * iretq to ring 3 (IOPL=3, IF=0).  Everything else (UART init, reset of
 * the virtio devices the firmware left live, TSC calibration, workload,
 * disk/NIC I/O; see devices.S) runs in 64-bit ring 3
 * using port I/O allowed by IOPL 3 and by an all-zero TSS I/O bitmap.
 */

        .set COM1,        0x3F8
        .set STATUS,      0x1000
        .set DISKBUF,     0x1400
        .set RDBUF,       0x1600
        .set LINEBUF,     0x1800
        .set NETBUF,      0x1A00
        .set PRDS,        0x1A80
        .set EXCBUF,      0x1C00
        .set FILLBUF,     0x100000
        .set KSTACK_TOP,  0x3000
        .set USTACK_TOP,  0x7000
        .set PARAMS,      0x7E00

        /* status block (guest-physical STATUS + offset), all u64 */
        .set ST_MAGIC,     0x00
        .set ST_COUNTER,   0x08    /* THE RAM counter */
        .set ST_TSC_HZ,    0x10
        .set ST_DIRTIED,   0x18    /* pages dirtied so far */
        .set ST_PERIODS,   0x20    /* C lines printed */
        .set ST_LAST_TSC,  0x28    /* TSC at last period */
        .set ST_DISK_OK,   0x30    /* I/O cycles whose writes all completed */
        .set ST_DISK_BUSY, 0x38    /* cycles skipped: the previous one still ran */
        .set ST_DISK_ERR,  0x40    /* failed disk commands */
        .set ST_NET_TX,    0x48
        .set ST_NET_ERR,   0x50
        .set ST_LATE,      0x58    /* periods that had to resync */
        .set ST_BOOT_TSC,  0x60
        .set ST_SPURIOUS,  0x68    /* unexpected interrupts (vector >= 32) */
        .set ST_DISK_BAD,  0x70    /* read-backs that differed from RAM's record */
        .set ST_DISK_CHECKED, 0x78 /* read-backs compared */
        .set ST_DISK_LAT_SUM, 0x80 /* TSC ticks, write phase of each OK cycle */
        .set ST_DISK_LAT_MAX, 0x88
        .set ST_DISK_BYTES, 0x90   /* bytes written (record + filler) */
        .set ST_DISK_SEQ,  0x98    /* write sequence number of the last record issued */
        .set ST_NET_SEQ,   0xA0    /* sequence number of the last datagram */
        /* private ring-3 variables (not a stable interface) */
        .set V_PERIOD_TICKS, 0x100
        .set V_TPP,          0x108 /* TSC ticks per dirtied page, 0 = off */
        .set V_NEXT_PRINT,   0x110
        .set V_NEXT_DIRTY,   0x118
        .set V_NEXT_STAT,    0x120
        .set V_DIRTY_IDX,    0x128
        .set V_REG_BASE,     0x130
        .set V_REG_PAGES,    0x138
        .set V_MAXBURST,     0x140
        .set V_FLAGS,        0x148
        .set V_INJECT,       0x150
        .set V_SECONDS,      0x158
        .set V_MEM_TOP,      0x160
        .set V_NIC,          0x168
        .set V_CAL_PPM,      0x170
        .set V_LBA,          0x178
        .set V_BMBASE,       0x180 /* bus-master IDE I/O base, 0 = PIO */
        .set V_DSTATE,       0x188 /* running disk command, DS_* (devices.S) */
        .set V_IO_EVERY,     0x190
        .set V_IO_CNT,       0x198
        .set V_IO_NS,        0x1A0
        .set V_CAL_ATSC,     0x1A8
        .set V_CAL_APIT,     0x1B0
        .set V_CAL_AW,       0x1B8
        .set V_CAL_DPIT,     0x1C0
        .set V_NEXT_POLL,    0x1C8
        .set V_POLL_TICKS,   0x1D0
        .set V_REC_VALID,    0x1D8 /* DISKBUF is what the disk holds */
        .set V_FILL_N,       0x1E0 /* filler sectors per cycle */
        .set V_FILL_LBA,     0x1E8
        .set V_IO_T0,        0x1F0
        .set V_PIO_LEFT,     0x1F8
        .set V_PIO_PTR,      0x200

        /* parameter block (PARAMS + offset) */
        .set P_MAGIC,      0x00    /* "PGPARAM1" */
        .set P_PPS,        0x08    /* u32 pages dirtied per second */
        .set P_PERIOD_US,  0x0C    /* u32 print period, microseconds */
        .set P_FLAGS,      0x10    /* u32 bit0 disk, bit1 net, bit2 S lines */
        .set P_DISK_LBA,   0x14    /* u32 LBA28 sector for counter writes */
        .set P_REG_BASE,   0x18    /* u32 dirty region base (bytes) */
        .set P_REG_PAGES,  0x1C    /* u32 dirty region size (4K pages) */
        .set P_NIC_BASE,   0x20    /* u32 NE2000 I/O base */
        .set P_CHECK,      0x24    /* u32 loop iterations between TSC checks */
        .set P_INJECT,     0x28    /* u64 debug: corrupt RAM counter at this value */
        .set P_DISK_DRIVE, 0x30    /* u32 0 = primary master, 1 = primary slave */
        .set P_IO_EVERY,   0x34    /* u32 disk/net I/O every N periods (0 -> 1) */
        .set P_NET_SRC_IP, 0x38    /* 4 bytes, network order (0 -> 10.0.0.2) */
        .set P_NET_DST_IP, 0x3C    /* (0 -> 255.255.255.255) */
        .set P_NET_SRC_PORT, 0x40  /* u16 (0 -> 7777) */
        .set P_NET_DST_PORT, 0x42  /* u16 (0 -> 7777) */
        .set P_DISK_SECTORS, 0x44  /* u32 sectors written per I/O cycle (0 -> 1) */

        .set F_DISK,  1
        .set F_NET,   2
        .set F_STATS, 4
        .set F_DISK_PIO, 8         /* force ATA PIO instead of bus-master DMA */


/* ===================================================================== */
        .section .boot, "ax"
        .code16
        .globl _start
_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x7C00, %sp
        ljmp    $0, $1f
1:      cld
        sti
        mov     $0x42, %ah              /* EDD extended read */
        mov     $dap, %si
        int     $0x13
        jc      load_fail
        cli
        /* fast A20 */
        in      $0x92, %al
        or      $2, %al
        and     $0xFE, %al
        out     %al, $0x92
        lgdtl   gdt_desc
        mov     %cr4, %eax
        or      $0x20, %eax             /* PAE */
        mov     %eax, %cr4
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     $0xC0000080, %ecx       /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax       /* PG | PE: real -> long mode directly */
        mov     %eax, %cr0
        ljmpl   $0x08, $long_entry

load_fail:
        mov     $loadmsg, %si
        mov     $COM1, %dx
2:      lodsb
        test    %al, %al
        jz      3f
        out     %al, %dx
        jmp     2b
3:      cli
        hlt
        jmp     3b

loadmsg: .asciz "LOADERR\n"
        .balign 4
dap:    .byte   0x10, 0
        .word   STAGE2_SECTORS          /* from guest.ld */
        .word   0x7E00, 0x0000
        .quad   1

        .org    510
        .byte   0x55, 0xAA

/* ===================================================================== */
/* sector 1: parameter block defaults (patched by mkguest.py)            */
        .section .params, "a"
params:
        .ascii  "PGPARAM1"
        .long   1000            /* pps */
        .long   10000           /* period_us */
        .long   F_STATS         /* flags */
        .long   2047            /* disk_lba */
        .long   0x2000000       /* region base 32 MiB */
        .long   16384           /* region pages (64 MiB) */
        .long   0x300           /* NE2000 I/O base */
        .long   1024            /* check iterations */
        .quad   0               /* inject_at */
        .long   0               /* disk drive */
        .long   1               /* io_every */
        .byte   10, 0, 0, 2     /* net_src_ip */
        .byte   255, 255, 255, 255      /* net_dst_ip */
        .word   7777            /* net_src_port */
        .word   7777            /* net_dst_port */
        .long   1               /* disk_sectors */
        .org    512

/* ===================================================================== */
        .text
        .code64

/* ---------------- ring 0: long mode entry ---------------- */
long_entry:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        xor     %eax, %eax
        mov     %ax, %fs
        mov     %ax, %gs
        mov     $KSTACK_TOP, %esp
        cld
        lidt    idt_desc
        mov     $0xFF, %al              /* mask every PIC interrupt line */
        out     %al, $0xA1
        out     %al, $0x21
        mov     $0x28, %ax
        ltr     %ax
        mov     $0x1B, %ax
        mov     %ax, %ds
        mov     %ax, %es
        pushq   $0x1B                   /* SS  (user data, RPL 3) */
        pushq   $USTACK_TOP             /* RSP */
        pushq   $0x3002                 /* RFLAGS: IOPL=3, IF=0 */
        pushq   $0x23                   /* CS  (user code 64, RPL 3) */
        pushq   $user_entry             /* RIP */
        iretq

/* ---------------- ring 0: exception stubs ---------------- */
        .macro  EXC n, haserr
exc\n:
        .if \haserr == 0
        pushq   $0
        .endif
        pushq   $\n
        jmp     exc_common
        .endm

        .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
        EXC     \n, 0
        .endr
        .irp n, 8,10,11,12,13,14,17,21,29,30
        EXC     \n, 1
        .endr

exc_common:
        cld
        mov     $EXCBUF, %edi
        mov     $s_exc, %esi
        call    lb_str
        mov     0(%rsp), %rax
        call    lb_hex
        mov     $s_err, %esi
        call    lb_str
        mov     8(%rsp), %rax
        call    lb_hex
        mov     $s_rip, %esi
        call    lb_str
        mov     16(%rsp), %rax
        call    lb_hex
        mov     $s_cs, %esi
        call    lb_str
        mov     24(%rsp), %rax
        call    lb_hex
        mov     $s_rfl, %esi
        call    lb_str
        mov     32(%rsp), %rax
        call    lb_hex
        mov     $s_cr2, %esi
        call    lb_str
        mov     %cr2, %rax
        call    lb_hex
        movb    $'\n', (%rdi)
        inc     %rdi
        mov     %rdi, %rcx
        sub     $EXCBUF, %rcx
        mov     $EXCBUF, %esi
        call    ser_write
1:      cli
        hlt
        jmp     1b

/* vectors 32-255: nothing is enabled, count and ignore */
spurious:
        incq    STATUS+ST_SPURIOUS
        iretq

/* ---------------- helpers (usable in ring 0 and ring 3) ----------------
 * Line building: %rdi = write pointer.  Clobber rax rcx rdx rsi r8.
 * Never touch rbx, r12-r15.
 */
lb_str:                         /* append asciz at %rsi */
1:      lodsb
        test    %al, %al
        jz      2f
        stosb
        jmp     1b
2:      ret

lb_hex:                         /* append %rax as 16 hex digits */
        mov     $16, %ecx
1:      rol     $4, %rax
        mov     %eax, %edx
        and     $15, %edx
        movb    hexdig(%rdx), %dl
        mov     %dl, (%rdi)
        inc     %rdi
        dec     %ecx
        jnz     1b
        ret

lb_dec:                         /* append %rax in decimal */
        sub     $32, %rsp
        lea     32(%rsp), %rsi
        mov     $10, %r8d
1:      xor     %edx, %edx
        div     %r8
        add     $'0', %dl
        dec     %rsi
        mov     %dl, (%rsi)
        test    %rax, %rax
        jnz     1b
        lea     32(%rsp), %rcx
2:      movb    (%rsi), %al
        stosb
        inc     %rsi
        cmp     %rcx, %rsi
        jb      2b
        add     $32, %rsp
        ret

lb_kv:                          /* append asciz %rsi then decimal %rax */
        push    %rax
        call    lb_str
        pop     %rax
        jmp     lb_dec

lb_kvh:                         /* append asciz %rsi then 0x + hex %rax (trimmed) */
        push    %rax
        call    lb_str
        pop     %rax
        movw    $0x7830, (%rdi)         /* "0x" */
        add     $2, %rdi
        mov     $16, %ecx
        test    %rax, %rax
        jz      3f
1:      rol     $4, %rax                /* skip leading zero nibbles */
        dec     %ecx
        mov     %eax, %edx
        and     $15, %edx
        jz      1b
        ror     $4, %rax
        inc     %ecx
2:      rol     $4, %rax
        mov     %eax, %edx
        and     $15, %edx
        movb    hexdig(%rdx), %dl
        mov     %dl, (%rdi)
        inc     %rdi
        dec     %ecx
        jnz     2b
        ret
3:      movb    $'0', (%rdi)
        inc     %rdi
        ret

lb_begin:
        mov     $LINEBUF, %edi
        ret

lb_flush:                       /* append '\n', send LINEBUF..rdi, reset rdi */
        movb    $'\n', (%rdi)
        inc     %rdi
        mov     %rdi, %rcx
        sub     $LINEBUF, %rcx
        mov     $LINEBUF, %esi
        call    ser_write
        mov     $LINEBUF, %edi
        ret

/* ser_write: send %rcx bytes at %rsi to COM1.  Waits for THRE (FIFO empty,
 * bounded poll) then pushes up to 16 bytes with one rep outsb. */
ser_write:
        test    %rcx, %rcx
        jz      9f
1:      mov     $COM1+5, %dx
        mov     $100000, %r8d
2:      in      %dx, %al
        test    $0x20, %al
        jnz     3f
        dec     %r8d
        jnz     2b
3:      mov     %rcx, %r8
        cmp     $16, %r8
        jbe     4f
        mov     $16, %r8d
4:      sub     %r8, %rcx
        push    %rcx
        mov     %r8, %rcx
        mov     $COM1, %dx
        rep outsb
        pop     %rcx
        test    %rcx, %rcx
        jnz     1b
9:      ret

/* ===================================================================== */
/* ring 3                                                                */
user_entry:
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %r12              /* TSC at ring-3 entry */
        /* UART: 115200 8N1, FIFO on, no interrupts */
        mov     $COM1+1, %dx
        xor     %al, %al
        out     %al, %dx                /* IER = 0 */
        mov     $COM1+3, %dx
        mov     $0x80, %al
        out     %al, %dx                /* DLAB */
        mov     $COM1, %dx
        mov     $1, %al
        out     %al, %dx                /* DLL = 1 */
        mov     $COM1+1, %dx
        xor     %al, %al
        out     %al, %dx                /* DLM = 0 */
        mov     $COM1+3, %dx
        mov     $0x03, %al
        out     %al, %dx                /* 8N1 */
        mov     $COM1+2, %dx
        mov     $0xC7, %al
        out     %al, %dx                /* FIFO enable + clear */
        mov     $COM1+4, %dx
        mov     $0x03, %al
        out     %al, %dx                /* DTR RTS */

        /* clear status block */
        mov     $STATUS, %edi
        mov     $0x80, %ecx
        xor     %eax, %eax
        rep stosq
        mov     $STATUS, %edi
        mov     $0x3130544154534750, %rax       /* "PGSTAT01" */
        mov     %rax, ST_MAGIC(%rdi)
        mov     %r12, STATUS+ST_BOOT_TSC

        call    lb_begin
        mov     $s_boot, %esi
        call    lb_str
        mov     STATUS+ST_BOOT_TSC, %rax
        call    lb_dec
        call    lb_flush

        /* virtio devices the firmware left live: reset them before this
         * guest dirties the memory of their rings (devices.S) */
        call    virtio_reset_all

        /* ---- memory size from CMOS (0x34/0x35: 64K units above 16M) ---- */
        mov     $0x35, %al
        out     %al, $0x70
        in      $0x71, %al
        movzbl  %al, %ecx
        shl     $8, %ecx
        mov     $0x34, %al
        out     %al, $0x70
        in      $0x71, %al
        movzbl  %al, %eax
        or      %eax, %ecx
        jz      1f
        shl     $16, %rcx
        add     $0x1000000, %rcx
        jmp     2f
1:      mov     $0x31, %al              /* fallback: 0x30/0x31 KiB above 1M */
        out     %al, $0x70
        in      $0x71, %al
        movzbl  %al, %ecx
        shl     $8, %ecx
        mov     $0x30, %al
        out     %al, $0x70
        in      $0x71, %al
        movzbl  %al, %eax
        or      %eax, %ecx
        shl     $10, %rcx
        add     $0x100000, %rcx
2:      mov     $0x40000000, %eax       /* only first 1 GiB is mapped */
        cmp     %rax, %rcx
        jbe     3f
        mov     %rax, %rcx
3:      mov     %rcx, STATUS+V_MEM_TOP

        /* ---- parameters ---- */
        mov     PARAMS+P_FLAGS, %eax
        mov     %rax, STATUS+V_FLAGS
        mov     PARAMS+P_INJECT, %rax
        mov     %rax, STATUS+V_INJECT
        mov     PARAMS+P_DISK_LBA, %eax
        and     $0x0FFFFFFF, %eax
        mov     %rax, STATUS+V_LBA
        /* region base: >= 2 MiB, 4K aligned; region must fit below mem top */
        mov     PARAMS+P_REG_BASE, %eax
        add     $0xFFF, %rax
        and     $~0xFFF, %rax
        cmp     $0x200000, %rax
        jae     1f
        mov     $0x200000, %eax
1:      mov     STATUS+V_MEM_TOP, %rcx
        cmp     %rcx, %rax
        jb      2f
        mov     %rcx, %rax              /* base beyond RAM: region empty */
2:      mov     %rax, STATUS+V_REG_BASE
        sub     %rax, %rcx
        shr     $12, %rcx               /* pages available */
        mov     PARAMS+P_REG_PAGES, %eax
        cmp     %rcx, %rax
        jbe     3f
        mov     %rcx, %rax
3:      mov     %rax, STATUS+V_REG_PAGES

        /* ---- TSC calibration against PIT channel 2 (~100 ms) ---- */
        call    tsc_calibrate

        /* ---- derived values ---- */
        mov     PARAMS+P_PERIOD_US, %eax
        test    %eax, %eax
        jnz     1f
        mov     $10000, %eax
1:      mulq    STATUS+ST_TSC_HZ        /* rdx:rax = hz * us */
        mov     $1000000, %ecx
        div     %rcx
        mov     %rax, STATUS+V_PERIOD_TICKS

        xor     %eax, %eax
        mov     %rax, STATUS+V_TPP
        mov     PARAMS+P_PPS, %ecx
        test    %ecx, %ecx
        jz      2f
        cmpq    $0, STATUS+V_REG_PAGES
        je      2f
        mov     STATUS+ST_TSC_HZ, %rax
        xor     %edx, %edx
        div     %rcx
        test    %rax, %rax
        jnz     1f
        inc     %rax
1:      mov     %rax, STATUS+V_TPP
        mov     %ecx, %eax              /* max burst = 100 ms worth + 1 */
        xor     %edx, %edx
        mov     $10, %r8d
        div     %r8
        inc     %rax
        mov     %rax, STATUS+V_MAXBURST
2:      mov     PARAMS+P_IO_EVERY, %eax
        test    %eax, %eax
        jnz     1f
        inc     %eax
1:      mov     %rax, STATUS+V_IO_EVERY
        mov     %rax, STATUS+V_IO_CNT
        /* cost of one trapped port read (100 x LSR) in ns */
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %r8
        mov     $100, %ecx
        mov     $COM1+5, %dx
1:      in      %dx, %al
        dec     %ecx
        jnz     1b
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        sub     %r8, %rax
        mov     $10000000, %ecx         /* ticks * 1e9 / 100 / hz */
        mul     %rcx
        divq    STATUS+ST_TSC_HZ
        mov     %rax, STATUS+V_IO_NS
        /* ---- parameter report ---- */
        call    lb_begin
        mov     $s_p_pps, %esi
        mov     PARAMS+P_PPS, %eax
        call    lb_kv
        mov     $s_p_period, %esi
        mov     PARAMS+P_PERIOD_US, %eax
        test    %eax, %eax
        jnz     1f
        mov     $10000, %eax
1:      call    lb_kv
        mov     $s_p_disk, %esi
        mov     STATUS+V_FLAGS, %rax
        and     $F_DISK, %eax
        call    lb_kv
        mov     $s_p_lba, %esi
        mov     STATUS+V_LBA, %rax
        call    lb_kv
        mov     $s_p_drive, %esi
        mov     PARAMS+P_DISK_DRIVE, %eax
        and     $1, %eax
        call    lb_kv
        mov     $s_p_net, %esi
        mov     STATUS+V_FLAGS, %rax
        shr     $1, %eax
        and     $1, %eax
        call    lb_kv
        mov     $s_p_nic, %esi
        mov     PARAMS+P_NIC_BASE, %eax
        call    lb_kvh
        mov     $s_p_stats, %esi
        mov     STATUS+V_FLAGS, %rax
        shr     $2, %eax
        and     $1, %eax
        call    lb_kv
        mov     $s_p_region, %esi
        mov     STATUS+V_REG_BASE, %rax
        call    lb_kvh
        mov     $s_p_pages, %esi
        mov     STATUS+V_REG_PAGES, %rax
        call    lb_kv
        mov     $s_p_mem, %esi
        mov     STATUS+V_MEM_TOP, %rax
        shr     $20, %rax
        call    lb_kv
        mov     $s_p_check, %esi
        mov     PARAMS+P_CHECK, %eax
        call    lb_kv
        mov     $s_p_inject, %esi
        mov     STATUS+V_INJECT, %rax
        call    lb_kv
        mov     $s_p_ioev, %esi
        mov     STATUS+V_IO_EVERY, %rax
        call    lb_kv
        call    lb_flush

        call    lb_begin
        mov     $s_t_hz, %esi
        mov     STATUS+ST_TSC_HZ, %rax
        call    lb_kv
        mov     $s_t_cal1, %esi
        mov     STATUS+V_CAL_PPM, %rax
        call    lb_kv
        mov     $s_t_per, %esi
        mov     STATUS+V_PERIOD_TICKS, %rax
        call    lb_kv
        mov     $s_t_tpp, %esi
        mov     STATUS+V_TPP, %rax
        call    lb_kv
        mov     $s_t_io, %esi
        mov     STATUS+V_IO_NS, %rax
        call    lb_kv
        mov     $s_t_ctr, %esi
        mov     $STATUS+ST_COUNTER, %eax
        call    lb_kvh
        call    lb_flush

        /* ---- optional devices ---- */
        testq   $F_DISK, STATUS+V_FLAGS
        jz      1f
        call    disk_init
1:      testq   $F_NET, STATUS+V_FLAGS
        jz      2f
        call    net_init
2:
        /* ---- main loop ---- */
        mov     $STATUS+ST_COUNTER, %ebx
        xor     %r15d, %r15d
        movq    $0, (%rbx)
        mov     PARAMS+P_CHECK, %r14d
        test    %r14d, %r14d
        jnz     1f
        mov     $1024, %r14d
1:      rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %r13
        mov     %rax, STATUS+ST_LAST_TSC
        add     STATUS+V_PERIOD_TICKS, %rax
        mov     %rax, STATUS+V_NEXT_PRINT
        mov     %r13, %rax
        add     STATUS+V_TPP, %rax
        mov     %rax, STATUS+V_NEXT_DIRTY
        mov     %r13, %rax
        add     STATUS+ST_TSC_HZ, %rax
        mov     %rax, STATUS+V_NEXT_STAT

main_loop:
        mov     %r14, %rcx
inner:
        inc     %r15                    /* register counter */
        incq    (%rbx)                  /* RAM counter */
        cmp     (%rbx), %r15
        jne     mismatch
        dec     %rcx
        jnz     inner

        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %r13              /* r13 = now */
        cmpq    $0, STATUS+V_TPP
        je      1f
        cmp     STATUS+V_NEXT_DIRTY, %r13
        jb      1f
        call    dirty_pages
1:      cmpq    $0, STATUS+V_DSTATE     /* a disk command is running */
        je      2f
        cmp     STATUS+V_NEXT_POLL, %r13
        jb      2f
        call    disk_poll
2:      cmp     STATUS+V_NEXT_PRINT, %r13
        jb      main_loop
        call    period_work
        jmp     main_loop

mismatch:
        mov     (%rbx), %r12
        call    lb_begin
        mov     $s_mm_ram, %esi
        call    lb_str
        mov     %r12, %rax
        call    lb_hex
        mov     $s_mm_reg, %esi
        call    lb_str
        mov     %r15, %rax
        call    lb_hex
        call    lb_flush
1:      pause
        jmp     1b

/* dirty due pages: write the counter into one qword of each page,
 * walking the region; catch up at most V_MAXBURST pages, then resync. */
dirty_pages:
        mov     STATUS+V_NEXT_DIRTY, %rax
        mov     STATUS+V_TPP, %rcx
        mov     STATUS+V_DIRTY_IDX, %rdx
        mov     STATUS+V_REG_PAGES, %r8
        mov     STATUS+V_REG_BASE, %r9
        mov     STATUS+V_MAXBURST, %r10
        xor     %esi, %esi
1:      mov     %rdx, %r11
        shl     $12, %r11
        mov     %r15, (%r9,%r11)
        inc     %rsi
        inc     %rdx
        cmp     %r8, %rdx
        jb      2f
        xor     %edx, %edx
2:      add     %rcx, %rax
        cmp     %rax, %r13
        jb      3f
        dec     %r10
        jnz     1b
        lea     (%r13,%rcx), %rax       /* too far behind: resync */
3:      mov     %rax, STATUS+V_NEXT_DIRTY
        mov     %rdx, STATUS+V_DIRTY_IDX
        add     %rsi, STATUS+ST_DIRTIED
        ret

period_work:
        call    lb_begin
        movw    $0x2043, (%rdi)         /* "C " */
        add     $2, %rdi
        mov     %r15, %rax
        call    lb_dec
        call    lb_flush
        incq    STATUS+ST_PERIODS
        mov     %r13, STATUS+ST_LAST_TSC
        mov     STATUS+V_NEXT_PRINT, %rax
        add     STATUS+V_PERIOD_TICKS, %rax
        cmp     %rax, %r13
        jb      1f
        incq    STATUS+ST_LATE          /* more than one period behind */
        mov     %r13, %rax
        add     STATUS+V_PERIOD_TICKS, %rax
1:      mov     %rax, STATUS+V_NEXT_PRINT

        decq    STATUS+V_IO_CNT         /* disk/net every io_every periods */
        jnz     3f
        mov     STATUS+V_IO_EVERY, %rax
        mov     %rax, STATUS+V_IO_CNT
        testq   $F_DISK, STATUS+V_FLAGS
        jz      2f
        call    disk_cycle
2:      testq   $F_NET, STATUS+V_FLAGS
        jz      3f
        call    net_send
3:      mov     STATUS+V_INJECT, %rax   /* debug fault injection */
        test    %rax, %rax
        jz      4f
        cmp     %rax, %r15
        jb      4f
        movq    $0, STATUS+V_INJECT
        btcq    $40, (%rbx)             /* flip a bit of the RAM counter */
4:      cmp     STATUS+V_NEXT_STAT, %r13
        jb      9f
        mov     STATUS+ST_TSC_HZ, %rax
        add     %rax, STATUS+V_NEXT_STAT
        incq    STATUS+V_SECONDS
        testq   $F_STATS, STATUS+V_FLAGS
        jz      9f
        call    stats_line
9:      ret

stats_line:
        call    lb_begin
        mov     $s_s_t, %esi
        mov     STATUS+V_SECONDS, %rax
        call    lb_kv
        mov     $s_s_dirt, %esi
        mov     STATUS+ST_DIRTIED, %rax
        call    lb_kv
        mov     $s_s_per, %esi
        mov     STATUS+ST_PERIODS, %rax
        call    lb_kv
        mov     $s_s_late, %esi
        mov     STATUS+ST_LATE, %rax
        call    lb_kv
        testq   $F_DISK, STATUS+V_FLAGS
        jz      1f
        mov     $s_s_dok, %esi
        mov     STATUS+ST_DISK_OK, %rax
        call    lb_kv
        mov     $s_s_dbusy, %esi
        mov     STATUS+ST_DISK_BUSY, %rax
        call    lb_kv
        mov     $s_s_derr, %esi
        mov     STATUS+ST_DISK_ERR, %rax
        call    lb_kv
        mov     $s_s_dbad, %esi
        mov     STATUS+ST_DISK_BAD, %rax
        call    lb_kv
        mov     $s_s_dbytes, %esi
        mov     STATUS+ST_DISK_BYTES, %rax
        call    lb_kv
        mov     STATUS+ST_DISK_LAT_SUM, %rax
        mov     STATUS+ST_DISK_OK, %rcx
        test    %rcx, %rcx
        jz      3f
        xor     %edx, %edx
        div     %rcx
3:      call    ticks_us
        mov     $s_s_dlat, %esi
        call    lb_kv
        mov     STATUS+ST_DISK_LAT_MAX, %rax
        call    ticks_us
        mov     $s_s_dlmax, %esi
        call    lb_kv
1:      testq   $F_NET, STATUS+V_FLAGS
        jz      2f
        mov     $s_s_ntx, %esi
        mov     STATUS+ST_NET_TX, %rax
        call    lb_kv
        mov     $s_s_nerr, %esi
        mov     STATUS+ST_NET_ERR, %rax
        call    lb_kv
2:      jmp     lb_flush

ticks_us:                       /* rax TSC ticks -> microseconds; clobbers rdx */
        mov     $1000000, %edx
        mul     %rdx
        divq    STATUS+ST_TSC_HZ
        ret

/* ---------------- TSC calibration vs PIT channel 2 ----------------
 * Channel 2 free-runs in mode 2 (period 65536 PIT ticks = 54.9 ms).  Each
 * sample latches the count between two rdtsc; the latch happens inside that
 * bracket.  A = tightest of 4 samples, then >= 100 ms of PIT ticks are
 * accumulated (sampling every ~3 exits, so wraps are never missed), then
 * B = tightest of 4 more.  hz = dTSC * 1193182 / dPIT.  Insensitive to an
 * occasional slow exit (host contention).  Sets ST_TSC_HZ and V_CAL_PPM
 * (bracket-width error bound in ppm).  Clobbers rbx, r12-r15. */
tsc_calibrate:
        in      $0x61, %al
        and     $0xFC, %al              /* speaker off */
        or      $0x01, %al              /* gate 2 on */
        out     %al, $0x61
        mov     $0xB4, %al              /* ch2, lo/hi, mode 2, binary */
        out     %al, $0x43
        xor     %al, %al
        out     %al, $0x42              /* count 0 = 65536 */
        out     %al, $0x42
        call    pit_sample
        mov     %eax, %r12d             /* r12 = previous count */
        xor     %r13d, %r13d            /* r13 = accumulated PIT ticks */
        mov     $-1, %r14               /* best width */
        mov     $4, %ebx
1:      call    pit_sample
        call    pit_accum
        cmp     %r14, %r9
        jae     2f
        mov     %r9, %r14
        mov     %r8, STATUS+V_CAL_ATSC
        mov     %r13, STATUS+V_CAL_APIT
        mov     %r9, STATUS+V_CAL_AW
2:      dec     %ebx
        jnz     1b
3:      call    pit_sample
        call    pit_accum
        mov     %r13, %rax
        sub     STATUS+V_CAL_APIT, %rax
        cmp     $119318, %rax           /* 100 ms */
        jb      3b
        mov     $-1, %r14
        mov     $4, %ebx
4:      call    pit_sample
        call    pit_accum
        cmp     %r14, %r9
        jae     5f
        mov     %r9, %r14
        mov     %r8, %r15               /* B tsc */
        mov     %r13, %rcx
        sub     STATUS+V_CAL_APIT, %rcx
        mov     %rcx, STATUS+V_CAL_DPIT
5:      dec     %ebx
        jnz     4b
        sub     STATUS+V_CAL_ATSC, %r15 /* dTSC */
        mov     %r15, %rax
        mov     $1193182, %ecx
        mul     %rcx
        divq    STATUS+V_CAL_DPIT
        mov     %rax, STATUS+ST_TSC_HZ
        mov     STATUS+V_CAL_AW, %rax   /* ppm = (wA + wB)/2 * 1e6 / dTSC */
        add     %r14, %rax
        mov     $500000, %ecx
        mul     %rcx
        div     %r15
        mov     %rax, STATUS+V_CAL_PPM
        ret

pit_accum:                      /* r13 += (r12 - eax) mod 65536; r12 = eax */
        mov     %r12d, %ecx
        sub     %eax, %ecx
        and     $0xFFFF, %ecx
        add     %rcx, %r13
        mov     %eax, %r12d
        ret

/* latch + read channel 2.  out: r8 = TSC at bracket midpoint, r9 = bracket
 * width (TSC ticks), eax = count */
pit_sample:
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %r8
        mov     $0x80, %al              /* counter latch, channel 2 */
        out     %al, $0x43
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        sub     %r8, %rax
        mov     %rax, %r9
        shr     $1, %rax
        add     %rax, %r8
        in      $0x42, %al
        mov     %al, %cl
        in      $0x42, %al
        mov     %al, %ch
        movzwl  %cx, %eax
        ret

        .include "devices.S"

/* ===================================================================== */
/* data                                                                  */
hexdig:     .ascii "0123456789abcdef"
s_exc:      .asciz "EXC vec="
s_err:      .asciz " err="
s_rip:      .asciz " rip="
s_cs:       .asciz " cs="
s_rfl:      .asciz " rflags="
s_cr2:      .asciz " cr2="
s_boot:     .asciz "BOOT counter-guest v2 ring3 tsc="
s_p_pps:    .asciz "P pps="
s_p_period: .asciz " period_us="
s_p_disk:   .asciz " disk="
s_p_lba:    .asciz " lba="
s_p_drive:  .asciz " drive="
s_p_net:    .asciz " net="
s_p_nic:    .asciz " nic="
s_p_stats:  .asciz " stats="
s_p_region: .asciz " region="
s_p_pages:  .asciz " pages="
s_p_mem:    .asciz " mem_mb="
s_p_check:  .asciz " check="
s_p_inject: .asciz " inject="
s_p_ioev:   .asciz " io_every="
s_t_hz:     .asciz "T tsc_hz="
s_t_cal1:   .asciz " cal_err_ppm<="
s_t_per:    .asciz " period_ticks="
s_t_tpp:    .asciz " ticks_per_page="
s_t_io:     .asciz " io_exit_ns="
s_t_ctr:    .asciz " counter_gpa="
s_mm_ram:   .asciz "MISMATCH ram="
s_mm_reg:   .asciz " reg="
s_s_t:      .asciz "S t="
s_s_dirt:   .asciz " dirtied="
s_s_per:    .asciz " periods="
s_s_late:   .asciz " late="
s_s_dok:    .asciz " disk_ok="
s_s_dbusy:  .asciz " disk_busy="
s_s_derr:   .asciz " disk_err="
s_s_ntx:    .asciz " net_tx="
s_s_nerr:   .asciz " net_err="
s_s_dbad:   .asciz " disk_bad="
s_s_dbytes: .asciz " disk_bytes="
s_s_dlat:   .asciz " disk_lat_us="
s_s_dlmax:  .asciz " disk_lat_max_us="
s_d_mode:   .asciz "D disk_mode="
s_pio:      .asciz "pio"
s_dma:      .asciz "dma"
s_d_bm:     .asciz " bm="
s_d_sect:   .asciz " sectors="
s_d_none:   .asciz "D none"
s_dmm_want: .asciz "DMISMATCH want "
s_dmm_got:  .asciz " got "
s_garbage:  .asciz "garbage"
s_diskerr:  .asciz "DISKERR no ATA device on primary channel, disk off"
s_neterr:   .asciz "NETERR no NE2000 answering reset, net off"
s_n_mac:    .asciz "N mac="
s_v_reset:  .asciz "V virtio reset"
s_v_noio:   .asciz "V virtio NOT reset (no I/O BAR0)"
s_v_dev:    .asciz " dev="
s_v_fn:     .asciz " fn="
s_v_id:     .asciz " device="
s_v_io:     .asciz " io="
s_v_st:     .asciz " status="
s_v_now:    .asciz " now="
s_n_udp:    .asciz " udp="

/* ---------------- descriptor tables ---------------- */
        .balign 16
gdt:
        .quad   0
        .quad   0x00AF9A000000FFFF      /* 0x08 kernel code 64 */
        .quad   0x00CF92000000FFFF      /* 0x10 kernel data */
        .quad   0x00CFF2000000FFFF      /* 0x18 user data (DPL 3) */
        .quad   0x00AFFA000000FFFF      /* 0x20 user code 64 (DPL 3) */
        .word   tss_end - tss - 1       /* 0x28 TSS: limit */
        .word   tss                     /* base 15:0 (image < 64 KiB) */
        .byte   0                       /* base 23:16 */
        .byte   0x89                    /* present, 64-bit TSS available */
        .byte   0
        .byte   0
        .long   0
        .long   0
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .quad   gdt

        .balign 16
idt:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .word   exc\n                   /* handlers live below 64 KiB */
        .word   0x08
        .byte   0
        .byte   0x8E                    /* present, DPL 0, interrupt gate */
        .word   0
        .long   0
        .long   0
        .endr
        .rept   224
        .word   spurious
        .word   0x08
        .byte   0
        .byte   0x8E
        .word   0
        .long   0
        .long   0
        .endr
idt_end:
idt_desc:
        .word   idt_end - idt - 1
        .quad   idt

        .balign 16
tss:
        .long   0
        .quad   KSTACK_TOP              /* RSP0 */
        .quad   0, 0                    /* RSP1, RSP2 */
        .quad   0                       /* reserved */
        .quad   KSTACK_TOP, 0, 0, 0, 0, 0, 0   /* IST1-7 */
        .quad   0
        .word   0
        .word   iobitmap - tss          /* I/O permission bitmap offset */
/* All-zero I/O bitmap = every port allowed at CPL 3.  IOPL=3 alone should
 * suffice on real hardware, but under PVM (kvm_pvm) ring 3 runs in hardware
 * ring 3 with IOPL 0; its #GP emulation path then checks this bitmap. */
iobitmap:
        .fill   8192, 1, 0
        .byte   0xFF
tss_end:

/* ---------------- identity page tables (static) ----------------
 * 0-2 MiB: 4 KiB pages (page 0 not present), 2 MiB-1 GiB: 2 MiB pages.
 * All entries P|RW|US. */
        .section .pt, "aw"
        .balign 4096
pml4:   .quad   pdpt + 7
        .fill   511, 8, 0
pdpt:   .quad   pd + 7
        .fill   511, 8, 0
pd:     .quad   pt0 + 7
        .set    i, 1
        .rept   511
        .quad   (i << 21) | 0x87
        .set    i, i + 1
        .endr
pt0:    .quad   0
        .set    i, 1
        .rept   511
        .quad   (i << 12) | 0x7
        .set    i, i + 1
        .endr
